//! `copy`: the echo server's whole per-connection loop.

use std::io;

use futures_io::{AsyncRead, AsyncWrite};

use super::{AsyncReadExt, AsyncWriteExt};

/// The size of `copy`'s buffer, allocated once per call. 8 KiB, as tokio's `io::copy`: one
/// read takes what a typical burst left in the socket buffer.
const COPY_BUF: usize = 8 * 1024;

/// Copies everything from `reader` to `writer` until the reader reaches end of stream, then
/// flushes the writer. Returns the number of bytes copied.
///
/// It does not close `writer`: call [`AsyncWriteExt::close`] for that (half-close a socket).
///
/// # Examples
///
/// ```
/// mini::block_on(async {
///     let mut reader: &[u8] = b"hello";
///     let mut writer: Vec<u8> = Vec::new();
///     assert_eq!(mini::io::copy(&mut reader, &mut writer).await?, 5);
///     assert_eq!(writer, b"hello");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn copy<R, W>(reader: &mut R, writer: &mut W) -> io::Result<u64>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut buf = vec![0u8; COPY_BUF];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            writer.flush().await?;
            return Ok(total);
        }
        writer.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}
