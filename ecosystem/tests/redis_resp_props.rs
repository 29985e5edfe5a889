//! Property tests of the RESP parser (cargo-fuzz needs nightly; proptest runs on stable
//! and in CI, with a bounded number of cases so it takes seconds):
//!
//! - arbitrary bytes, and bytes drawn from RESP's own alphabet, never panic it;
//! - its answers do not depend on how the input was split into reads;
//! - valid commands, encoded as a client encodes them, come back unchanged whatever the
//!   split points, pipelined many to a buffer, and so do inline commands.

use mini_ecosystem::redis::resp::{encode_command, Parser, ProtocolError};
use proptest::collection::vec;
use proptest::prelude::*;

/// What a parser made of some input: the commands, then an error if one ended it.
type Outcome = (Vec<Vec<Vec<u8>>>, Option<ProtocolError>);

/// Feeds `input` to a parser in chunks that end at `cuts` (offsets, in any order), the way
/// the server does: append what arrived, parse every complete frame, drop what was parsed.
fn parse_in_chunks(input: &[u8], cuts: &[usize], max_bulk_len: usize) -> Outcome {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    let mut parser = Parser::new(max_bulk_len);
    let mut buf = Vec::new();
    let mut start = 0;
    let mut fed = 0;
    let mut commands = Vec::new();
    for cut in cuts {
        buf.extend_from_slice(&input[fed..cut]);
        fed = cut;
        loop {
            match parser.parse(&buf[start..]) {
                Ok(Some(n)) => {
                    let cmd = parser.command(&buf[start..]);
                    assert!(n > 0, "a parse that consumes nothing would loop forever");
                    commands.push(cmd.iter().map(<[u8]>::to_vec).collect());
                    start += n;
                }
                Ok(None) => break,
                Err(e) => return (commands, Some(e)),
            }
        }
        // Move the unfinished frame to the front now and then, as the server's buffer
        // does: the parser must keep offsets, not positions in a buffer.
        if start > 0 && cut % 3 == 0 {
            buf.drain(..start);
            start = 0;
        }
    }
    (commands, None)
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() }
}

/// Bytes that look like RESP often enough to get past the first line: markers, digits,
/// line ends, quotes, spaces and letters, with some arbitrary bytes mixed in.
fn resp_like() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"*".to_vec()),
        Just(b"$".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"-".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"'".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"\\x".to_vec()),
        Just(b" ".to_vec()),
        (0u32..40).prop_map(|n| n.to_string().into_bytes()),
        Just(b"99999999999999999999".to_vec()),
        "[A-Za-z]{1,5}".prop_map(String::into_bytes),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    vec(token, 0..60).prop_map(|tokens| tokens.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic_and_split_points_do_not_matter(
        input in vec(any::<u8>(), 0..512),
        cuts in vec(0usize..512, 0..8),
    ) {
        let whole = parse_in_chunks(&input, &[], 64);
        prop_assert_eq!(parse_in_chunks(&input, &cuts, 64), whole);
    }

    #[test]
    fn resp_like_bytes_never_panic_and_split_points_do_not_matter(
        input in resp_like(),
        cuts in vec(0usize..256, 0..8),
    ) {
        let whole = parse_in_chunks(&input, &[], 16);
        prop_assert_eq!(parse_in_chunks(&input, &cuts, 16), whole);
    }

    #[test]
    fn encoded_commands_round_trip_whatever_the_split_points(
        commands in vec(vec(vec(any::<u8>(), 0..40), 1..6), 1..12),
        cuts in vec(0usize..4096, 0..16),
    ) {
        let mut input = Vec::new();
        for cmd in &commands {
            encode_command(&mut input, cmd);
        }
        prop_assert_eq!(parse_in_chunks(&input, &cuts, 1 << 20), (commands, None));
    }

    #[test]
    fn inline_commands_round_trip_whatever_the_split_points(
        commands in vec(vec("[!#-&(-)+-~]{1,12}", 1..5), 1..12),
        cuts in vec(0usize..1024, 0..16),
        crlf in any::<bool>(),
    ) {
        // Words of printable ASCII without spaces, quotes and `*` (which would start a
        // multibulk frame): what a person types.
        let end = if crlf { "\r\n" } else { "\n" };
        let input: String = commands.iter().map(|words| words.join(" ") + end).collect();
        let expected: Vec<Vec<Vec<u8>>> = commands
            .iter()
            .map(|words| words.iter().map(|w| w.clone().into_bytes()).collect())
            .collect();
        prop_assert_eq!(parse_in_chunks(input.as_bytes(), &cuts, 1 << 20), (expected, None));
    }
}
