//! The `#[mini::main]` and `#[mini::test]` attributes.
//!
//! Use them through the `mini` crate, which re-exports them; this crate is an
//! implementation detail. Both attributes turn an `async fn` into a plain
//! function that drives its body to completion with `mini::block_on`.
//!
//! The crate is written on the compiler's `proc_macro` API alone, with no
//! `syn` or `quote`: the input is one function signature, small enough to walk
//! token by token, and skipping those dependencies keeps clean builds of
//! programs that use `mini` fast.
//!
//! On an error the macros still emit the function, as close to the intended
//! expansion as they can, next to a `compile_error!`: IDEs keep working, and
//! the user sees one precise error instead of a cascade of follow-up ones.

#![forbid(unsafe_code)]

use proc_macro::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};

/// Runs the `async fn main` of a program on the `mini` runtime.
///
/// `main` may return `()`, `std::io::Result<()>`, or any other type a `main`
/// may return, such as `Result<(), Box<dyn std::error::Error>>`. Attributes,
/// visibility and the return type are kept as written. The attribute takes no
/// arguments.
///
/// # Examples
///
/// ```ignore
/// #[mini::main]
/// async fn main() -> std::io::Result<()> {
///     mini::yield_now().await;
///     println!("hello from mini");
///     Ok(())
/// }
/// ```
///
/// # Equivalent code
///
/// The example above expands to:
///
/// ```ignore
/// fn main() -> std::io::Result<()> {
///     let body = async {
///         mini::yield_now().await;
///         println!("hello from mini");
///         Ok(())
///     };
///     ::mini::block_on(body)
/// }
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Main, args, item)
}

/// Runs an `async fn` test on the `mini` runtime.
///
/// As with `#[test]`, the function takes no arguments and may return `()` or
/// a `Result`. Do not add `#[test]` too: this attribute already does. The
/// attribute takes no arguments.
///
/// # Examples
///
/// ```ignore
/// #[mini::test]
/// async fn adds_across_an_await() {
///     let a = 1;
///     mini::yield_now().await;
///     assert_eq!(a + 1, 2);
/// }
/// ```
///
/// # Equivalent code
///
/// The example above expands to:
///
/// ```ignore
/// #[::core::prelude::v1::test]
/// fn adds_across_an_await() {
///     let body = async {
///         let a = 1;
///         mini::yield_now().await;
///         assert_eq!(a + 1, 2);
///     };
///     ::mini::block_on(body)
/// }
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Test, args, item)
}

/// Which attribute is expanding: only the messages and the added `#[test]`
/// differ between the two.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Main,
    Test,
}

impl Kind {
    /// The attribute and the function, as error messages name them.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Kind::Main => ("#[mini::main]", "the main function"),
            Kind::Test => ("#[mini::test]", "the test function"),
        }
    }
}

/// The pieces of `#[attrs] vis const async unsafe extern "C" fn name<generics>(args) -> ret where .. { body }`.
struct ItemFn {
    /// Outer attributes (doc comments included): each `#` and its `[...]`.
    attrs: Vec<(TokenTree, Group)>,
    vis: Vec<TokenTree>,
    /// `unsafe` is passed through; `const` and `extern "ABI"` are rejected.
    unsafety: Option<TokenTree>,
    asyncness: Option<Span>,
    constness: Option<Span>,
    abi: Option<(Span, Span)>,
    fn_token: TokenTree,
    name: TokenTree,
    generics: Vec<TokenTree>,
    args: Group,
    /// Everything between the arguments and the body: `-> RET` and any `where` clause.
    tail: Vec<TokenTree>,
    body: Group,
}

fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let (attr, function) = kind.names();
    let mut errors = TokenStream::new();
    let mut error = |message: &str, start: Span, end: Span| {
        errors.extend(compile_error(message, start, end));
    };

    // No arguments are accepted yet; point at the first one.
    if let Some(arg) = args.into_iter().next() {
        let message = format!("unknown attribute argument `{arg}`: {attr} takes no arguments");
        error(&message, arg.span(), arg.span());
    }

    let f = match parse(item.clone()) {
        Ok(f) => f,
        // Not a function: hand the item back untouched.
        Err(first) => {
            let message = format!("the {attr} attribute can only be applied to an `async fn`");
            error(&message, first, first);
            let mut out = item;
            out.extend(errors);
            return out;
        }
    };

    if f.asyncness.is_none() {
        let message = "the `async` keyword is missing from the function declaration";
        error(message, f.fn_token.span(), f.fn_token.span());
    }
    if let Some(span) = f.constness {
        error(&format!("{function} cannot be `const`"), span, span);
    }
    if let Some((start, end)) = f.abi {
        error(&format!("{function} cannot be `extern`"), start, end);
    }
    if let (Some(first), Some(last)) = (f.generics.first(), f.generics.last()) {
        let message = format!("{function} cannot have generic parameters");
        error(&message, first.span(), last.span());
    }
    let has_args = !f.args.stream().is_empty();
    if has_args {
        let message = format!("{function} cannot accept arguments");
        error(&message, f.args.span(), f.args.span());
    }

    let mut out = TokenStream::new();
    if kind == Kind::Test {
        // With arguments or generics, rustc's `#[test]` would report the same
        // mistake again, so leave it off; then the unused function would draw
        // a `dead_code` warning, which is just noise next to the error.
        out.extend(parse_str(if has_args || !f.generics.is_empty() {
            "#[allow(dead_code)]"
        } else {
            "#[::core::prelude::v1::test]"
        }));
    }
    for (hash, group) in f.attrs {
        if kind == Kind::Test && is_test_attr(&group) {
            // Report a second test attribute and drop it: left in place it
            // would register a second test, or misread our expansion.
            let message =
                "second test attribute is supplied, remove it: #[mini::test] already adds `#[test]`";
            error(message, hash.span(), group.span());
            continue;
        }
        out.extend([hash, TokenTree::Group(group)]);
    }
    out.extend(f.vis);
    // `const` and `extern` were reported above; dropping them keeps rustc
    // from complaining again. `unsafe` is left for rustc to judge.
    out.extend(f.unsafety);
    out.extend([f.fn_token, f.name]);
    out.extend(f.generics);
    out.extend([TokenTree::Group(f.args)]);
    out.extend(f.tail);
    let body = if f.asyncness.is_some() {
        // The body becomes an `async` block, so `.await`, `?` and `return`
        // keep their meaning, and the now synchronous function blocks on it.
        let mut stmts = parse_str("let body = async");
        stmts.extend([TokenTree::Group(f.body)]);
        stmts.extend(parse_str("; ::mini::block_on(body)"));
        Group::new(Delimiter::Brace, stmts)
    } else {
        // Not async (already reported): keep the body as the user wrote it.
        f.body
    };
    out.extend([TokenTree::Group(body)]);
    out.extend(errors);
    out
}

/// Walks the item's tokens. If it is not a function, fails with the span of
/// its first token after the attributes, where the error will point.
fn parse(item: TokenStream) -> Result<ItemFn, Span> {
    let tokens: Vec<TokenTree> = item.into_iter().collect();
    let punct = |i: usize| match tokens.get(i) {
        Some(TokenTree::Punct(p)) => p.as_char(),
        _ => ' ',
    };
    let ident = |i: usize| match tokens.get(i) {
        Some(TokenTree::Ident(ident)) => ident.to_string(),
        _ => String::new(),
    };
    let group = |i: usize, delimiter| match tokens.get(i) {
        Some(TokenTree::Group(g)) if g.delimiter() == delimiter => Some(g.clone()),
        _ => None,
    };

    let mut i = 0;
    let mut attrs = Vec::new();
    while let (Some(hash), Some(attr)) = (tokens.get(i), group(i + 1, Delimiter::Bracket)) {
        if punct(i) != '#' {
            break;
        }
        attrs.push((hash.clone(), attr));
        i += 2;
    }
    let not_a_fn = tokens.get(i).map_or_else(Span::call_site, TokenTree::span);

    let mut vis = Vec::new();
    if ident(i) == "pub" {
        vis.push(tokens[i].clone());
        i += 1;
        if let Some(restriction) = group(i, Delimiter::Parenthesis) {
            vis.push(restriction.into());
            i += 1;
        }
    }

    let (mut unsafety, mut asyncness, mut constness, mut abi) = (None, None, None, None);
    loop {
        let span = tokens.get(i).map_or_else(Span::call_site, TokenTree::span);
        match ident(i).as_str() {
            "async" => asyncness = Some(span),
            "unsafe" => unsafety = Some(tokens[i].clone()),
            "const" => constness = Some(span),
            "extern" => {
                // `extern` may be followed by an ABI string such as "C".
                let mut end = span;
                if let Some(TokenTree::Literal(literal)) = tokens.get(i + 1) {
                    end = literal.span();
                    i += 1;
                }
                abi = Some((span, end));
            }
            _ => break,
        }
        i += 1;
    }

    if ident(i) != "fn" || ident(i + 1).is_empty() {
        return Err(not_a_fn);
    }
    let (fn_token, name) = (tokens[i].clone(), tokens[i + 1].clone());
    i += 2;

    // Generic parameters: up to the `>` matching the first `<`. The `>` of a
    // `->` (as in `F: Fn() -> T`) closes nothing.
    let mut generics = Vec::new();
    let mut depth = 0;
    while punct(i) == '<' || depth > 0 {
        match (punct(i - 1), punct(i)) {
            (_, '<') => depth += 1,
            ('-', '>') => {}
            (_, '>') => depth -= 1,
            _ => {}
        }
        match tokens.get(i) {
            Some(token) => generics.push(token.clone()),
            None => return Err(not_a_fn),
        }
        i += 1;
    }

    let args = group(i, Delimiter::Parenthesis).ok_or(not_a_fn)?;
    // The body is the last token; a `fn f();` without one is not for us.
    let body = match tokens.len().checked_sub(1) {
        Some(last) if last > i => group(last, Delimiter::Brace).ok_or(not_a_fn)?,
        _ => return Err(not_a_fn),
    };
    let tail = tokens[i + 1..tokens.len() - 1].to_vec();

    Ok(ItemFn { attrs, vis, unsafety, asyncness, constness, abi, fn_token, name, generics, args, tail, body })
}

/// Is this attribute a test marker: `[test]`, `[core::prelude::v1::test]`,
/// or another runtime's `[tokio::test(...)]`, that is, any path ending in `test`?
fn is_test_attr(attr: &Group) -> bool {
    let mut last = None;
    for token in attr.stream() {
        match token {
            TokenTree::Ident(ident) => last = Some(ident.to_string()),
            TokenTree::Punct(p) if p.as_char() == ':' => {}
            // Arguments end the path.
            TokenTree::Group(g) if g.delimiter() == Delimiter::Parenthesis => break,
            // `=` as in `[doc = "..."]`, or anything else: not a bare path.
            _ => return false,
        }
    }
    last.as_deref() == Some("test")
}

/// Renders `::core::compile_error! { "message" }`, reported from `start` to `end`.
///
/// Why two spans: rustc reports a macro call from its first token to its last,
/// so giving the path `start` and the braces `end` underlines the whole range
/// (the trick `syn` uses on stable Rust).
fn compile_error(message: &str, start: Span, end: Span) -> TokenStream {
    let mut tokens: Vec<TokenTree> = Vec::new();
    for segment in ["core", "compile_error"] {
        tokens.push(Punct::new(':', Spacing::Joint).into());
        tokens.push(Punct::new(':', Spacing::Alone).into());
        tokens.push(Ident::new(segment, start).into());
    }
    tokens.push(Punct::new('!', Spacing::Alone).into());
    tokens.iter_mut().for_each(|token| token.set_span(start));
    let mut message = TokenTree::from(Literal::string(message));
    message.set_span(end);
    let mut group = Group::new(Delimiter::Brace, message.into());
    group.set_span(end);
    tokens.push(group.into());
    tokens.into_iter().collect()
}

/// Parses fixed Rust source; the inputs are literals in this file.
fn parse_str(source: &str) -> TokenStream {
    source.parse().expect("valid tokens")
}
