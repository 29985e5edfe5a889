//! RESP2 on the wire: the request parser ([`Parser`]) and the reply encoders.
//!
//! A request is either a *multibulk* frame, an array of bulk strings
//! (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`, what every client library sends), or an *inline*
//! command, one line of words (`GET k\r\n`, what a person types into `nc` or telnet).
//!
//! The parser borrows: a parsed command is a list of byte ranges into the connection's read
//! buffer (or, for an inline command with quotes, into a scratch buffer the parser reuses),
//! so parsing allocates nothing once the parser's vectors have grown to the largest command
//! seen. It is also resumable: handed a buffer that holds only part of a frame, it remembers
//! how far it got (the arguments already complete, the length of the bulk string it waits
//! for) and goes on from there when called again with the same bytes plus more. A 100 MB
//! value arriving in 16 KiB reads is thus parsed in O(1) per read, not rescanned each time.
//!
//! Its answers depend only on the bytes, never on how they were split into reads: each limit
//! is checked against the length a line *has*, not the length that happens to be buffered.

use std::fmt;
use std::ops::Range;

/// The longest inline command line, and the longest `*` or `$` header line, that the parser
/// accepts: 64 KiB, Redis's `PROTO_INLINE_MAX_SIZE`. A longer line is an error rather than a
/// buffer that grows until the client stops sending.
pub const MAX_LINE: usize = 64 * 1024;

/// The most arguments a multibulk frame may declare: 1024 × 1024, Redis's limit.
pub const MAX_MULTIBULK_LEN: i64 = 1024 * 1024;

/// The default cap on one bulk string: 512 MiB, Redis's `proto-max-bulk-len`. Kept the same
/// so that any value a real Redis accepts is accepted here. The declared length is never
/// allocated up front (memory grows only with the bytes that arrive), so the cap bounds what
/// a client can make the server *hold*, not what a header can make it reserve.
pub const DEFAULT_MAX_BULK_LEN: usize = 512 * 1024 * 1024;

/// Why a request is malformed. Redis answers each with `-ERR Protocol error: ...` and closes
/// the connection after the reply, and so does this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// An inline command line longer than [`MAX_LINE`].
    TooBigInlineRequest,
    /// An inline command with an unclosed quote, or a closing quote not followed by a space.
    UnbalancedQuotes,
    /// A `*` header line longer than [`MAX_LINE`].
    TooBigMultibulkCount,
    /// A `*` count that is not an integer or is above [`MAX_MULTIBULK_LEN`].
    InvalidMultibulkLength,
    /// A `$` header line longer than [`MAX_LINE`].
    TooBigBulkCount,
    /// A `$` length that is not an integer, is negative, or is above the parser's cap.
    InvalidBulkLength,
    /// An element of a multibulk frame that does not start with `$`; holds the byte found.
    ExpectedDollar(u8),
    /// A bulk string whose declared length is not followed by `\r\n`.
    MissingCrlf,
}

impl ProtocolError {
    /// The reply's text after `-ERR Protocol error: `, as bytes: the unexpected byte of
    /// [`ExpectedDollar`](ProtocolError::ExpectedDollar) is shown as it came, unless it is a
    /// line break, which would end the error line early (Redis writes a space instead).
    fn detail(self, out: &mut Vec<u8>) {
        let text: &str = match self {
            ProtocolError::TooBigInlineRequest => "too big inline request",
            ProtocolError::UnbalancedQuotes => "unbalanced quotes in request",
            ProtocolError::TooBigMultibulkCount => "too big mbulk count string",
            ProtocolError::InvalidMultibulkLength => "invalid multibulk length",
            ProtocolError::TooBigBulkCount => "too big bulk count string",
            ProtocolError::InvalidBulkLength => "invalid bulk length",
            ProtocolError::MissingCrlf => "expected '\\r\\n' after bulk data",
            ProtocolError::ExpectedDollar(got) => {
                out.extend_from_slice(b"expected '$', got '");
                out.push(if got == b'\r' || got == b'\n' { b' ' } else { got });
                out.push(b'\'');
                return;
            }
        };
        out.extend_from_slice(text.as_bytes());
    }

    /// Appends the error reply, `-ERR Protocol error: <detail>\r\n`.
    ///
    /// ```
    /// use mini_ecosystem::redis::resp::ProtocolError;
    ///
    /// let mut out = Vec::new();
    /// ProtocolError::InvalidBulkLength.encode(&mut out);
    /// assert_eq!(out, b"-ERR Protocol error: invalid bulk length\r\n");
    /// ```
    pub fn encode(self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"-ERR Protocol error: ");
        self.detail(out);
        out.extend_from_slice(b"\r\n");
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = Vec::new();
        self.detail(&mut text);
        write!(f, "Protocol error: {}", text.escape_ascii())
    }
}

impl std::error::Error for ProtocolError {}

/// Where the parser stands inside the frame it has not finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing of the current frame parsed yet.
    Start,
    /// Inside a multibulk frame: `remaining` arguments still to come, the next one starting
    /// at `pos` (relative to the frame's start); `bulk` is the length of the argument whose
    /// `$` header was read, if its data has not all arrived.
    Multibulk { remaining: usize, pos: usize, bulk: Option<usize> },
}

/// Which buffer the argument ranges of the last parsed command point into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The bytes handed to [`Parser::parse`] (multibulk frames, plain inline commands).
    Input,
    /// The parser's own scratch buffer (inline commands whose quotes had to be unescaped).
    Scratch,
}

/// A resumable, non-allocating RESP2 request parser. See the [module docs](self).
///
/// Call [`parse`](Parser::parse) with the unconsumed input, starting at the first byte of
/// the current frame. On `Ok(Some(n))` a whole command was parsed: read it with
/// [`command`](Parser::command), then drop the first `n` bytes and call again. On
/// `Ok(None)` more input is needed: call again later with the same bytes and those that
/// arrived since (moving them in memory is fine, the parser keeps offsets, not pointers).
///
/// # Examples
///
/// ```
/// use mini_ecosystem::redis::resp::Parser;
///
/// let mut parser = Parser::new(1024);
/// let input = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\nPING\r\n";
/// let n = parser.parse(input)?.expect("a whole frame");
/// let cmd = parser.command(input);
/// assert_eq!(cmd.iter().collect::<Vec<_>>(), [&b"GET"[..], b"key"]);
///
/// let rest = &input[n..];
/// assert_eq!(parser.parse(rest)?, Some(6));
/// assert_eq!(parser.command(rest).get(0), Some(&b"PING"[..]));
/// assert_eq!(parser.parse(&rest[6..])?, None); // nothing more yet
/// # Ok::<(), mini_ecosystem::redis::resp::ProtocolError>(())
/// ```
#[derive(Debug)]
pub struct Parser {
    max_bulk_len: usize,
    state: State,
    args: Vec<Range<usize>>,
    source: Source,
    scratch: Vec<u8>,
}

impl Parser {
    /// A parser that rejects bulk strings longer than `max_bulk_len` bytes (see
    /// [`DEFAULT_MAX_BULK_LEN`]).
    pub fn new(max_bulk_len: usize) -> Parser {
        Parser {
            max_bulk_len,
            state: State::Start,
            args: Vec::new(),
            source: Source::Input,
            scratch: Vec::new(),
        }
    }

    /// Parses the frame at the start of `buf`. See the [type docs](Parser) for the protocol.
    ///
    /// `Ok(Some(n))`: a command of `n` bytes was parsed (it may have no arguments: an empty
    /// line or `*0\r\n`, which a server ignores). `Ok(None)`: the frame is not complete.
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] when the bytes cannot be the start of a valid frame. The parser
    /// is then reset; the connection should be closed, as nothing after the bad bytes can be
    /// trusted to start a frame.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let result = match self.state {
            State::Start => match buf.first() {
                None => return Ok(None),
                Some(b'*') => self.start_multibulk(buf),
                Some(_) => self.inline(buf),
            },
            State::Multibulk { remaining, pos, bulk } => self.multibulk(buf, remaining, pos, bulk),
        };
        if result.is_err() {
            self.state = State::Start;
            self.args.clear();
        }
        result
    }

    /// The total length of the unfinished frame, once the parser knows it: while it waits for
    /// the data of a bulk string, the bytes up to that string's end. A reader may grow its
    /// buffer to this size instead of doubling past it; it is never more than the input seen
    /// so far plus one declared bulk length.
    pub fn needed(&self) -> Option<usize> {
        match self.state {
            State::Multibulk { pos, bulk: Some(len), .. } => Some(pos.saturating_add(len).saturating_add(2)),
            _ => None,
        }
    }

    /// The command parsed by the last [`parse`](Parser::parse) that returned `Ok(Some(_))`.
    /// `buf` must be the slice handed to that call.
    pub fn command<'a>(&'a self, buf: &'a [u8]) -> Command<'a> {
        let src = match self.source {
            Source::Input => buf,
            Source::Scratch => &self.scratch,
        };
        Command { src, ranges: &self.args }
    }

    /// Empties the argument list for a new frame, and gives back its memory if a huge
    /// frame (up to a million arguments) grew it: one such command must not pin megabytes
    /// for the rest of the connection.
    fn reset_args(&mut self) {
        const KEEP: usize = 1024;
        if self.args.capacity() > KEEP {
            self.args = Vec::new();
        }
        self.args.clear();
    }

    fn start_multibulk(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let Some((line, next)) =
            line(buf, 1, ProtocolError::TooBigMultibulkCount, ProtocolError::InvalidMultibulkLength)?
        else {
            return Ok(None);
        };
        let count = parse_i64(line).ok_or(ProtocolError::InvalidMultibulkLength)?;
        if count > MAX_MULTIBULK_LEN {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        self.reset_args();
        self.source = Source::Input;
        if count <= 0 {
            // Redis ignores `*0` and `*-1` as requests: an empty command.
            return Ok(Some(next));
        }
        self.multibulk(buf, count as usize, next, None)
    }

    /// Goes on with a multibulk frame from where [`State::Multibulk`] says it stopped.
    fn multibulk(
        &mut self,
        buf: &[u8],
        mut remaining: usize,
        mut pos: usize,
        mut bulk: Option<usize>,
    ) -> Result<Option<usize>, ProtocolError> {
        // The state is written back before every `return Ok(None)`: the next call resumes
        // from it, so no byte of a frame is scanned twice.
        while remaining > 0 {
            let len = match bulk {
                Some(len) => len,
                None => {
                    let Some(&first) = buf.get(pos) else {
                        self.state = State::Multibulk { remaining, pos, bulk };
                        return Ok(None);
                    };
                    if first != b'$' {
                        return Err(ProtocolError::ExpectedDollar(first));
                    }
                    let header = line(
                        &buf[pos..],
                        1,
                        ProtocolError::TooBigBulkCount,
                        ProtocolError::InvalidBulkLength,
                    )?;
                    let Some((digits, next)) = header else {
                        self.state = State::Multibulk { remaining, pos, bulk };
                        return Ok(None);
                    };
                    let len = parse_i64(digits)
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|&n| n <= self.max_bulk_len)
                        .ok_or(ProtocolError::InvalidBulkLength)?;
                    pos += next;
                    bulk = Some(len);
                    len
                }
            };
            // Saturating: a cap configured near usize::MAX must not wrap the sum around.
            let end = pos.saturating_add(len);
            if buf.len() < end.saturating_add(2) {
                self.state = State::Multibulk { remaining, pos, bulk };
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError::MissingCrlf);
            }
            self.args.push(pos..end);
            pos = end + 2;
            bulk = None;
            remaining -= 1;
        }
        self.state = State::Start;
        Ok(Some(pos))
    }

    /// An inline command: one line, `\n`-terminated (a `\r` before it is dropped), split into
    /// words as Redis's `sdssplitargs` does: spaces separate, `"..."` takes C escapes
    /// (`\n`, `\xff`, ...), `'...'` takes only `\'`.
    fn inline(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let Some(nl) = memchr(b'\n', &buf[..buf.len().min(MAX_LINE + 1)]) else {
            return if buf.len() > MAX_LINE { Err(ProtocolError::TooBigInlineRequest) } else { Ok(None) };
        };
        let line = &buf[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.reset_args();
        if line.contains(&b'"') || line.contains(&b'\'') {
            self.source = Source::Scratch;
            self.scratch.clear();
            split_quoted(line, &mut self.scratch, &mut self.args)?;
        } else {
            self.source = Source::Input;
            let mut i = 0;
            while i < line.len() {
                if is_space(line[i]) {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < line.len() && !is_space(line[i]) {
                    i += 1;
                }
                self.args.push(start..i);
            }
        }
        Ok(Some(nl + 1))
    }
}

impl Default for Parser {
    /// A parser with the default bulk cap, [`DEFAULT_MAX_BULK_LEN`].
    fn default() -> Parser {
        Parser::new(DEFAULT_MAX_BULK_LEN)
    }
}

/// One parsed command: its arguments, the command name first, as borrowed byte strings.
#[derive(Debug, Clone, Copy)]
pub struct Command<'a> {
    src: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl<'a> Command<'a> {
    /// How many arguments, the name included.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether there are none (an empty line or `*0\r\n`).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Argument `i` (0 is the command name).
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        self.ranges.get(i).map(|r| &self.src[r.clone()])
    }

    /// The arguments in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let src = self.src;
        self.ranges.iter().map(move |r| &src[r.clone()])
    }
}

/// The header line that starts at `buf[0]`: the bytes from `skip` up to the first `\r`,
/// which must be followed by `\n`, and the offset after that `\n`. `Ok(None)` if the line is
/// not complete yet; `too_long` if it is (or would be) longer than [`MAX_LINE`]; `bad_end`
/// if the `\r` is followed by something else.
fn line(
    buf: &[u8],
    skip: usize,
    too_long: ProtocolError,
    bad_end: ProtocolError,
) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let window = &buf[..buf.len().min(MAX_LINE + 1)];
    let Some(cr) = memchr(b'\r', window) else {
        return if buf.len() > MAX_LINE { Err(too_long) } else { Ok(None) };
    };
    match buf.get(cr + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((&buf[skip..cr], cr + 2))),
        Some(_) => Err(bad_end),
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// C's `isspace`, which is what Redis splits inline commands on.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Splits a line with quotes, as Redis's `sdssplitargs`, appending the unescaped words to
/// `out` and their ranges (into `out`) to `args`. A quote opens anywhere outside quotes
/// (`a"b c"` is the one word `ab c`), and a closing quote must end its word.
fn split_quoted(line: &[u8], out: &mut Vec<u8>, args: &mut Vec<Range<usize>>) -> Result<(), ProtocolError> {
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return Ok(());
        }
        let start = out.len();
        let mut quote: Option<u8> = None;
        while let Some(&c) = line.get(i) {
            i += 1;
            let Some(q) = quote else {
                match c {
                    b'"' | b'\'' => quote = Some(c),
                    _ if is_space(c) => break,
                    _ => out.push(c),
                }
                continue;
            };
            if c == q {
                if line.get(i).is_some_and(|&next| !is_space(next)) {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                quote = None;
                break;
            }
            let next = line.get(i).copied();
            match (q, c, next) {
                (b'"', b'\\', Some(b'x')) if hex_pair(&line[i + 1..]).is_some() => {
                    out.push(hex_pair(&line[i + 1..]).unwrap_or_default());
                    i += 3;
                }
                (b'"', b'\\', Some(escaped)) => {
                    out.push(match escaped {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    i += 1;
                }
                (b'\'', b'\\', Some(b'\'')) => {
                    out.push(b'\'');
                    i += 1;
                }
                _ => out.push(c),
            }
        }
        if quote.is_some() {
            return Err(ProtocolError::UnbalancedQuotes);
        }
        args.push(start..out.len());
    }
}

/// The byte written by the two hex digits at the start of `s`, if they are hex digits.
fn hex_pair(s: &[u8]) -> Option<u8> {
    match s {
        [hi, lo, ..] => Some(hex(*hi)? * 16 + hex(*lo)?),
        _ => None,
    }
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Parses a decimal `i64` as strictly as Redis's `string2ll`: an optional `-`, then digits
/// with no leading zero (except `0` itself), no `+`, no spaces, no overflow.
///
/// ```
/// use mini_ecosystem::redis::resp::parse_i64;
///
/// assert_eq!(parse_i64(b"-42"), Some(-42));
/// assert_eq!(parse_i64(b"042"), None);
/// assert_eq!(parse_i64(b"9223372036854775808"), None);
/// ```
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] => return (!negative).then_some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    // Accumulate negatively so that i64::MIN, whose magnitude i64 cannot hold, parses too.
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

/// Writes `n` in decimal into `buf` and returns the digits, without going through `fmt`
/// (this runs for every integer reply and every `INCR`).
pub(crate) fn format_i64(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut rest = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        // 19 digits at most for an i64, so there is room for the sign.
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

fn push_int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(format_i64(n, &mut [0; 20]));
}

fn push_len(out: &mut Vec<u8>, prefix: u8, len: usize) {
    out.push(prefix);
    // A length fits i64 on every platform this builds on (isize::MAX <= i64::MAX).
    push_int(out, len as i64);
    out.extend_from_slice(b"\r\n");
}

/// Appends a simple string reply, `+text\r\n`. `text` must not hold `\r` or `\n`.
pub fn simple(out: &mut Vec<u8>, text: &str) {
    debug_assert!(!text.contains(['\r', '\n']));
    out.push(b'+');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends an error reply, `-text\r\n`. The text starts with the error code (`ERR`,
/// `NOPROTO`, ...). A `\r` or `\n` in it becomes a space, as Redis does, so that a command
/// name quoted in the message cannot end the line early.
///
/// ```
/// let mut out = Vec::new();
/// mini_ecosystem::redis::resp::error(&mut out, b"ERR unknown command 'a\r\nb'");
/// assert_eq!(out, b"-ERR unknown command 'a  b'\r\n");
/// ```
pub fn error(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'-');
    out.extend(text.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.extend_from_slice(b"\r\n");
}

/// Appends an integer reply, `:n\r\n`.
pub fn integer(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    push_int(out, n);
    out.extend_from_slice(b"\r\n");
}

/// Appends a bulk string reply, `$len\r\ndata\r\n`.
///
/// ```
/// let mut out = Vec::new();
/// mini_ecosystem::redis::resp::bulk(&mut out, b"hi");
/// assert_eq!(out, b"$2\r\nhi\r\n");
/// ```
pub fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    push_len(out, b'$', data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the RESP2 null reply, `$-1\r\n` (a missing key).
pub fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// Appends an array header, `*len\r\n`; the `len` elements follow.
pub fn array(out: &mut Vec<u8>, len: usize) {
    push_len(out, b'*', len);
}

/// Appends a request as a client sends it: a multibulk frame of bulk strings.
///
/// ```
/// let mut out = Vec::new();
/// mini_ecosystem::redis::resp::encode_command(&mut out, &["GET", "k"]);
/// assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
/// ```
pub fn encode_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    array(out, args.len());
    for arg in args {
        bulk(out, arg.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses every command in `input` at once; the error, if any, ends the list.
    fn parse_all(input: &[u8]) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>) {
        let mut parser = Parser::new(1 << 20);
        let mut commands = Vec::new();
        let mut rest = input;
        loop {
            match parser.parse(rest) {
                Ok(Some(n)) => {
                    commands.push(parser.command(rest).iter().map(<[u8]>::to_vec).collect());
                    rest = &rest[n..];
                }
                Ok(None) => return (commands, None),
                Err(e) => return (commands, Some(e)),
            }
        }
    }

    fn words(input: &[u8]) -> Vec<Vec<u8>> {
        let (mut commands, err) = parse_all(input);
        assert_eq!((commands.len(), err), (1, None), "{:?}", input.escape_ascii().to_string());
        commands.remove(0)
    }

    fn error_of(input: &[u8]) -> ProtocolError {
        parse_all(input).1.expect("a protocol error")
    }

    #[test]
    fn multibulk_frames_parse_to_their_arguments() {
        assert_eq!(words(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"), [&b"SET"[..], b"k", b""]);
        // Binary data, CRLF included, passes through a bulk string untouched.
        assert_eq!(words(b"*1\r\n$4\r\n\r\n\0\xff\r\n"), [&b"\r\n\0\xff"[..]]);
    }

    #[test]
    fn empty_frames_are_empty_commands() {
        assert_eq!(parse_all(b"*0\r\n*-1\r\n\r\n   \n").0, vec![Vec::<Vec<u8>>::new(); 4]);
    }

    #[test]
    fn inline_commands_split_on_spaces_and_honour_quotes() {
        assert_eq!(words(b"  set  k\tv \r\n"), [&b"set"[..], b"k", b"v"]);
        assert_eq!(words(b"PING\n"), [&b"PING"[..]]);
        assert_eq!(words(b"set \"a b\\x41\\n\" 'it\\'s' \"\"\r\n"), [&b"set"[..], b"a bA\n", b"it's", b""]);
        // A quote opens anywhere, as in Redis; escapes work only inside double quotes.
        assert_eq!(words(b"set a\"b c\" d\\n\n"), [&b"set"[..], b"ab c", b"d\\n"]);
        assert_eq!(words(b"set \"\\xzz\\x4\" \"\\\"\"\n"), [&b"set"[..], b"xzzx4", b"\""]);
        assert_eq!(error_of(b"set \"abc\n"), ProtocolError::UnbalancedQuotes);
        assert_eq!(error_of(b"set 'a'b\n"), ProtocolError::UnbalancedQuotes);
    }

    #[test]
    fn malformed_frames_are_the_errors_redis_names() {
        assert_eq!(error_of(b"*x\r\n"), ProtocolError::InvalidMultibulkLength);
        assert_eq!(error_of(b"*1048577\r\n"), ProtocolError::InvalidMultibulkLength);
        assert_eq!(error_of(b"*1\rX"), ProtocolError::InvalidMultibulkLength);
        assert_eq!(error_of(b"*1\r\n:1\r\n"), ProtocolError::ExpectedDollar(b':'));
        assert_eq!(error_of(b"*1\r\n$-1\r\n"), ProtocolError::InvalidBulkLength);
        assert_eq!(error_of(b"*1\r\n$01\r\n"), ProtocolError::InvalidBulkLength);
        assert_eq!(error_of(b"*1\r\n$2\r\nabc\r\n"), ProtocolError::MissingCrlf);
        let mut long = b"*1\r\n$".to_vec();
        long.resize(MAX_LINE + 10, b'1');
        assert_eq!(error_of(&long), ProtocolError::TooBigBulkCount);
        assert_eq!(error_of(&vec![b'a'; MAX_LINE + 1]), ProtocolError::TooBigInlineRequest);
        assert_eq!(
            error_of(&[b"*".as_slice(), &[b'1'; MAX_LINE + 1]].concat()),
            ProtocolError::TooBigMultibulkCount
        );
    }

    #[test]
    fn a_line_at_the_limit_is_accepted_and_one_past_it_is_not() {
        let mut line = vec![b'a'; MAX_LINE];
        assert_eq!(parse_all(&line), (vec![], None), "incomplete, not yet too long");
        line.push(b'\n');
        assert_eq!(words(&line).len(), 1);
        let mut over = vec![b'a'; MAX_LINE + 1];
        over.push(b'\n');
        assert_eq!(error_of(&over), ProtocolError::TooBigInlineRequest);
    }

    #[test]
    fn the_bulk_cap_is_inclusive() {
        let mut parser = Parser::new(3);
        assert_eq!(parser.parse(b"*1\r\n$3\r\nabc\r\n"), Ok(Some(13)));
        assert_eq!(parser.parse(b"*1\r\n$4\r\n"), Err(ProtocolError::InvalidBulkLength));
        // A huge declared length is refused from its header alone, before any data.
        assert_eq!(parser.parse(b"*1\r\n$99999999999999999999\r\n"), Err(ProtocolError::InvalidBulkLength));
    }

    #[test]
    fn a_partial_frame_resumes_where_it_stopped() {
        let frame = b"*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n";
        let mut parser = Parser::new(1024);
        for end in 0..frame.len() {
            assert_eq!(parser.parse(&frame[..end]), Ok(None), "prefix of {end} bytes");
        }
        assert_eq!(parser.parse(frame), Ok(Some(frame.len())));
        assert_eq!(parser.command(frame).iter().collect::<Vec<_>>(), [&b"GET"[..], b"hello"]);
    }

    #[test]
    fn needed_is_the_end_of_the_awaited_bulk() {
        let mut parser = Parser::new(1 << 20);
        assert_eq!(parser.parse(b"*1\r\n$1000\r\nab"), Ok(None));
        assert_eq!(parser.needed(), Some(11 + 1000 + 2));
        let mut parser = Parser::new(1 << 20);
        assert_eq!(parser.parse(b"*1\r\n$10"), Ok(None));
        assert_eq!(parser.needed(), None, "the length is not known until its line ends");
    }

    #[test]
    fn a_huge_frame_does_not_pin_its_argument_list() {
        let mut parser = Parser::new(1024);
        let mut frame = Vec::new();
        encode_command(&mut frame, &vec!["x"; 5000]);
        assert_eq!(parser.parse(&frame), Ok(Some(frame.len())));
        assert!(parser.args.capacity() >= 5000);
        assert_eq!(parser.parse(b"PING\r\n"), Ok(Some(6)));
        assert!(parser.args.capacity() <= 1024, "kept {}", parser.args.capacity());
    }

    #[test]
    fn an_error_resets_the_parser() {
        let mut parser = Parser::new(1024);
        assert_eq!(parser.parse(b"*2\r\n$1\r\na\r\n"), Ok(None));
        assert!(parser.parse(b"*2\r\n$1\r\na\r\n!").is_err());
        assert_eq!(parser.parse(b"PING\r\n"), Ok(Some(6)));
    }

    #[test]
    fn parse_i64_is_as_strict_as_string2ll() {
        for (text, want) in [
            (&b"0"[..], Some(0)),
            (b"-0", None),
            (b"+1", None),
            (b" 1", None),
            (b"1 ", None),
            (b"", None),
            (b"-", None),
            (b"9223372036854775807", Some(i64::MAX)),
            (b"-9223372036854775808", Some(i64::MIN)),
            (b"-9223372036854775809", None),
        ] {
            assert_eq!(parse_i64(text), want, "{}", text.escape_ascii());
        }
    }

    #[test]
    fn replies_encode_as_resp2() {
        let mut out = Vec::new();
        simple(&mut out, "OK");
        integer(&mut out, -12);
        integer(&mut out, i64::MIN);
        bulk(&mut out, b"");
        null(&mut out);
        array(&mut out, 2);
        ProtocolError::ExpectedDollar(b'\n').encode(&mut out);
        assert_eq!(
            out,
            b"+OK\r\n:-12\r\n:-9223372036854775808\r\n$0\r\n\r\n$-1\r\n*2\r\n\
              -ERR Protocol error: expected '$', got ' '\r\n"
        );
    }
}
