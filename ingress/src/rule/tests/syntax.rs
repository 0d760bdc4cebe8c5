//! Rule text read as the Go expression Træfik parses it (`vulcand/predicate` over
//! `go/parser.ParseExpr`): Go string literals, comments, whitespace, and the line breaks
//! Go's scanner turns into the end of the expression.

use super::check_refused;
use crate::rule::{parse, HostPattern, Rule};

fn path(rule: &str) -> String {
    match parse(rule) {
        Ok(Rule::Path(p)) => p,
        other => panic!("{rule}: {other:?}"),
    }
}

#[test]
fn double_quoted_strings_take_go_escapes() {
    let table = [
        (r#"Path("/a\tb")"#, "/a\tb"),
        (r#"Path("/\a\b\f\n\r\v")"#, "/\x07\x08\x0C\n\r\x0B"),
        (r#"Path("/\\\"")"#, "/\\\""),
        (r#"Path("/\x41\101")"#, "/AA"),
        (r#"Path("/\xc3\xa9")"#, "/é"),
        (r#"Path("/\u00e9\U0001F9AD")"#, "/é🦭"),
        (r#"Path("/\000")"#, "/\0"),
        ("Path(\"/é`\")", "/é`"),
    ];
    for (rule, want) in table {
        assert_eq!(path(rule), want, "{rule}");
    }
    check_refused(&[
        r#"Path("/\'")"#,
        r#"Path("/\q")"#,
        r#"Path("/\400")"#,
        r#"Path("/\12")"#,
        r#"Path("/\x4")"#,
        r#"Path("/\xff")"#,
        r#"Path("/\uD800")"#,
        r#"Path("/\U00110000")"#,
        r#"Path("/\u12")"#,
        "Path(\"/a\nb\")",
        "Path(\"/a\\",
    ]);
}

#[test]
fn raw_strings_drop_carriage_returns() {
    assert_eq!(path("Path(`/a\r\nb`)"), "/a\nb");
    assert_eq!(path("Path(`/a\\n`)"), "/a\\n", "no escapes in backticks");
    check_refused(&["Path(`/a\0`)", "Path(`/a\u{FEFF}`)"]);
}

#[test]
fn other_literals_are_refused() {
    check_refused(&[
        "Host('a')",
        "Host(1)",
        "Host(a)",
        "Host(`a` + `b`)",
        "Host((`a`))",
        "Host(,)",
        "Host(`a`,,)",
        "Host(`a` `b`)",
    ]);
}

#[test]
fn a_trailing_comma_is_allowed() {
    assert_eq!(parse("Host(`a`,)").unwrap(), parse("Host(`a`)").unwrap());
    assert_eq!(
        parse("Header(`a`, `b`, )").unwrap(),
        parse("Header(`a`, `b`)").unwrap()
    );
}

#[test]
fn comments_and_go_whitespace() {
    let host = Rule::Host(HostPattern::Exact("a".into()));
    for rule in [
        "Host(`a`) // the shop",
        "/* the shop */ Host(`a`)",
        "Host(/* name */ `a`)",
        "\tHost (`a`)\r\n",
        "\u{FEFF}Host(`a`)",
        "Host(`a`)\n\n",
        "Host(`a`) /* x\ny */",
    ] {
        assert_eq!(parse(rule).unwrap(), host, "{rule:?}");
    }
    assert!(parse("Host(`a`) /* xy */ && Path(`/`)").is_ok());
    assert!(parse("Host(`a`) &&\n  Path(`/`)").is_ok());
    assert!(parse("Host(\n  `a`,\n)").is_ok());
    assert!(parse("(\n  Host(`a`) ||\n  Host(`b`))").is_ok());
    check_refused(&[
        "Host(`a`) /* open",
        "\u{a0}Host(`a`)",
        "\x0BHost(`a`)",
        "Host(`a`) ; ",
        "Host(`a`) and Path(`/`)",
        "Host(`a`) & Path(`/`)",
        "Host(`a`) | Path(`/`)",
        "Host(`a`) != Path(`/`)",
        "Host(`a`) &&& Path(`/`)",
        "-Host(`a`)",
    ]);
}

#[test]
fn a_line_break_after_an_operand_ends_the_rule() {
    for (rule, at) in [
        ("Host(`a`)\n&& Path(`/`)", 9),
        ("Host(`a`) // c\n|| Path(`/`)", 10),
        ("Host(`a`) /* x\ny */ && Path(`/`)", 10),
        ("Host\n(`a`)", 4),
        ("Host(\n`a`\n)", 9),
        ("(\nHost(`a`)\n)", 11),
    ] {
        let e = parse(rule).unwrap_err();
        assert_eq!(e.pos, at, "{rule:?}: {e}");
        assert!(e.message.contains("line break"), "{rule:?}: {e}");
    }
}

#[test]
fn printing_round_trips_strings_go_must_quote() {
    for rule in [
        "Path(\"/a\\rb\")",
        "Header(`k`, \"a`b\")",
        "Header(`k`, \"\\x00\")",
        "Header(`k`, \"\\uFEFF\")",
        "Header(`k`, \"\\x7f\\x01\")",
    ] {
        let parsed = parse(rule).unwrap();
        let printed = parsed.to_string();
        assert_eq!(
            parse(&printed).unwrap(),
            parsed,
            "{rule} printed as {printed}"
        );
    }
    assert_eq!(
        parse("Path(\"/a\\rb\")").unwrap().to_string(),
        "Path(\"/a\\rb\")"
    );
    assert_eq!(parse("host(`A.com`)").unwrap().to_string(), "Host(`a.com`)");
    assert_eq!(parse("Host(`*`)").unwrap().to_string(), "Host(`*`)");
    assert_eq!(
        parse("Host(`*.A.com`)").unwrap().to_string(),
        "Host(`*.a.com`)"
    );
    assert_eq!(parse("QueryRegexp(`k`)").unwrap().to_string(), "Query(`k`)");
}
