//! With both mini's and futures-util's extension traits glob-imported, calls on mini's own
//! socket types still resolve: they have the methods inherently (net/src/stream.rs), and an
//! inherent method wins over a trait's. Without them this file fails to compile with E0034.

#![allow(unused_imports)] // the point is that both globs are in scope

use futures::prelude::*;
use mini::io::*;
use mini::net::UnixStream;

#[test]
fn both_extension_traits_in_scope_do_not_clash_on_mini_sockets() {
    mini::block_on(async {
        let (mut a, mut b) = UnixStream::pair()?;
        a.write_all(b"ping").await?;
        a.flush().await?;
        let mut buf = [0; 4];
        b.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"ping");
        assert_eq!(b.write(b"p").await?, 1);
        assert_eq!(a.read(&mut buf).await?, 1);

        let (mut reader, mut writer) = UnixStream::split(&mut a);
        writer.write_all(b"x").await?;
        writer.flush().await?;
        assert_eq!(b.read(&mut buf).await?, 1);
        b.write_all(b"y").await?;
        reader.read_exact(&mut buf[..1]).await?;
        assert_eq!(&buf[..1], b"y");
        writer.close().await?;
        let mut rest = Vec::new();
        assert_eq!(b.read_to_end(&mut rest).await?, 0, "the close ended a's write side");

        let (mut reader, mut writer) = b.into_split();
        writer.write_all(b"end").await?;
        writer.flush().await?;
        writer.close().await?;
        let mut got = Vec::new();
        a.read_to_end(&mut got).await?;
        assert_eq!(got, b"end");
        a.close().await?;
        reader.read_to_end(&mut rest).await?;
        let _ = reader.read(&mut buf).await?;
        let _ = reader.read_exact(&mut buf[..0]).await;
        Ok::<(), std::io::Error>(())
    })
    .unwrap();
}
