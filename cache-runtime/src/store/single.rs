//! Single-key commands, the same on every Redis connection kind (a
//! standalone `ConnectionManager`, a cluster connection that routes by key).

use std::time::Duration;

use redis::aio::ConnectionLike;

use super::{KeyTtl, SResult, StoreError};
use crate::ttl::ttl_millis;

pub(crate) async fn exists(conn: &mut impl ConnectionLike, entry: &str) -> SResult<bool> {
    Ok(redis::cmd("EXISTS").arg(entry).query_async::<u64>(conn).await? > 0)
}

pub(crate) async fn ttl(conn: &mut impl ConnectionLike, entry: &str) -> SResult<KeyTtl> {
    let ms: i64 = redis::cmd("PTTL").arg(entry).query_async(conn).await?;
    Ok(match ms {
        -2 => KeyTtl::Missing,
        -1 => KeyTtl::NoExpiry,
        ms => KeyTtl::ExpiresIn(Duration::from_millis(ms.max(0) as u64)),
    })
}

/// `INCRBY`; a value that is not an integer (or would overflow) is
/// [`StoreError::NotAnInteger`].
pub(crate) async fn incr_by(conn: &mut impl ConnectionLike, entry: &str, by: i64) -> SResult<i64> {
    match redis::cmd("INCRBY").arg(entry).arg(by).query_async(conn).await {
        Ok(n) => Ok(n),
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {
            Err(StoreError::NotAnInteger)
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn expire(conn: &mut impl ConnectionLike, entry: &str, ttl: Duration) -> SResult<bool> {
    Ok(redis::cmd("PEXPIRE")
        .arg(entry)
        .arg(ttl_millis(ttl))
        .query_async::<u64>(conn)
        .await?
        == 1)
}
