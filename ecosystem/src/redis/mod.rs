//! A Redis-compatible server (RESP2), written directly on mini's sockets: the protocol,
//! the keyspace and the connection loop, with no Redis library.
//!
//! ```text
//!  TcpListener ── accept ──► connection task (one per client)        expire task (10 Hz)
//!                              │                                          │
//!   read ──► ReadBuf ──► resp::Parser ──► commands::execute ──► Db ◄──────┘
//!                                            │
//!   write ◄── one output buffer ◄── replies ─┘
//! ```
//!
//! - **Parse → execute → reply.** [`resp::Parser`] turns the bytes of a request into a
//!   command whose arguments borrow the read buffer (no allocation per command);
//!   `commands/` looks the name up, checks the arity and runs it against the keyspace
//!   (`db.rs`), appending the reply to the connection's output buffer (`commands/keyspace.rs`
//!   has the data commands, `commands/connection.rs` the rest).
//! - **Pipelining.** A connection executes every complete command its read buffer holds
//!   before writing, and writes all their replies with one `write` (earlier only if they
//!   pass 64 KiB). So 16 pipelined `GET`s cost one `read` and one `write`.
//! - **One thread.** Every connection runs on the one mini thread and shares the keyspace
//!   through an `Rc<RefCell<_>>`, borrowed for one command at a time and never across an
//!   `.await`: commands are atomic without locks, as in Redis.
//! - **Expiry.** Lazy: a command that meets a key past its deadline deletes it and sees
//!   nothing. Active: a task ten times a second walks the keys that have a deadline and
//!   deletes the dead ones, for at most 25 ms a pass, as Redis's `serverCron`.
//! - **Caps, as Redis's.** A bulk string over [`Config::max_bulk_len`] (512 MiB by default),
//!   a frame declaring more than 1024 × 1024 arguments, or a line (inline command or
//!   header) over 64 KiB is a protocol error: `-ERR Protocol error: ...`, then the
//!   connection closes. The read buffer grows with the bytes that actually arrive, never
//!   to a length a header merely declares, and shrinks back to 16 KiB after a big value.
//! - **Inline commands.** A line that does not start with `*` is split on spaces (with
//!   Redis's quoting rules), so `PING` typed into `nc` works.
//!
//! What it is not: one database (`SELECT 0` only), strings only (no lists, hashes, ...),
//! no persistence, no replication, no `AUTH`, no RESP3.
//!
//! # Examples
//!
//! ```no_run
//! #[mini::main]
//! async fn main() -> std::io::Result<()> {
//!     let listener = mini::net::TcpListener::bind("127.0.0.1:6379").await?;
//!     let stats = mini_ecosystem::redis::serve(listener, mini::signal::ctrl_c()).await;
//!     println!("served {} connections", stats.connections);
//!     Ok(())
//! }
//! ```

mod commands;
mod db;
pub mod resp;
mod server;

pub use server::{serve, serve_with, Config, Stats};
