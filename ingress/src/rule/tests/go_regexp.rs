//! Regular expressions read as Go's `regexp/syntax` reads them (Træfik compiles every
//! `*Regexp` matcher with Go's `regexp.Compile`): the expectations follow Go's parser
//! (`parse.go`) and its documented syntax, at the places where the `regex` crate differs.

use crate::rule::{parse, Regex};

/// `(pattern, [(text, matches)])`.
type Table<'a> = &'a [(&'a str, &'a [(&'a str, bool)])];

fn check(table: Table<'_>) {
    for (pattern, cases) in table {
        let re = Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        assert_eq!(re.as_str(), *pattern);
        for (text, expected) in *cases {
            assert_eq!(re.is_match(text), *expected, "{pattern} on {text:?}");
        }
    }
}

fn check_refused(patterns: &[&str]) {
    for pattern in patterns {
        assert!(Regex::new(pattern).is_err(), "{pattern} should be refused");
    }
}

#[test]
fn a_brace_that_starts_no_repetition_is_a_literal() {
    check(&[
        ("{", &[("{", true), ("a", false)]),
        ("a{", &[("a{", true), ("a", false)]),
        ("a{}", &[("a{}", true)]),
        ("a{,5}", &[("a{,5}", true), ("aaaaa", false)]),
        ("a{x}", &[("a{x}", true)]),
        ("a{01}", &[("a{01}", true), ("a", false)]),
        ("a{1,02}", &[("a{1,02}", true)]),
        ("a{2", &[("a{2", true), ("aa", false)]),
        ("a{2,", &[("a{2,", true)]),
        ("}", &[("}", true)]),
        ("^{id:[0-9]+}$", &[("{id:42}", true), ("42", false)]),
        ("x{2}{,3}", &[("xx{,3}", true)]),
        ("(?i){A}", &[("{a}", true)]),
        ("[{]{2}", &[("{{", true), ("{", false)]),
    ]);
}

#[test]
fn counted_repetitions() {
    check(&[
        ("^a{2}$", &[("aa", true), ("a", false), ("aaa", false)]),
        ("^a{2,}$", &[("aa", true), ("aaaa", true), ("a", false)]),
        ("^a{2,3}$", &[("aa", true), ("aaa", true), ("aaaa", false)]),
        ("^a{0}b$", &[("b", true), ("ab", false)]),
        ("^a{2}?$", &[("aa", true)]),
        ("^a{1000}$", &[("a", false)]),
        ("^(a{10}){10}$", &[("a", false)]),
        ("^((a{10}){10}){10}$", &[("a", false)]),
        ("^((a{1000}){0}){2}$", &[("", true)]),
        ("^(a*){1000}$", &[("aaa", true)]),
        ("^(a{1000}){1}$", &[("a", false)]),
    ]);
    check_refused(&[
        "a{1001}",
        "a{2,1001}",
        "a{3,2}",
        "a{99999999999}",
        "(a{501}){2}",
        "((a{10}){10}){11}",
        "(a{2}){1000}",
        "(a|b{20}){51}",
        "{2}",
        "a|{2}",
        "({2})",
    ]);
}

#[test]
fn stacked_repetitions_are_refused() {
    check_refused(&[
        "a**", "a*+", "a+*", "a?*", "a{2}{3}", "a{2}*", "a*{2}", "a*??", "a+?+",
    ]);
    check(&[
        ("^a*?b$", &[("aab", true)]),
        ("^a+?$", &[("a", true)]),
        ("^a??b$", &[("b", true)]),
    ]);
}

#[test]
fn repetition_needs_something_to_repeat() {
    check_refused(&["*a", "+", "?", "a|*", "(*)", "(?i)*", "(|+)"]);
    // `(?i)` sets a flag and holds no item: `*` repeats the `a` before it, as in Go.
    check(&[(
        "^a(?i)*b$",
        &[("aaab", true), ("aaaB", true), ("b", true), ("AAb", false)],
    )]);
    // Assertions can be repeated in Go.
    check(&[("^*a", &[("a", true)]), ("a$+", &[("a", true)])]);
}

#[test]
fn perl_classes_are_ascii_only() {
    check(&[
        (r"^\d+$", &[("0123", true), ("٣", false), ("１", false)]),
        (r"^\D$", &[("٣", true), ("1", false)]),
        (r"^\w+$", &[("a_Z9", true), ("é", false), ("ß", false)]),
        (r"^\W$", &[("é", true), ("_", false)]),
        (
            r"^\s$",
            &[
                (" ", true),
                ("\t", true),
                ("\n", true),
                ("\r", true),
                ("\x0C", true),
                ("\x0B", false),
                ("\u{a0}", false),
            ],
        ),
        (r"^\S$", &[("\x0B", true), ("\u{a0}", true), (" ", false)]),
        (
            r"\bfoo\b",
            &[("éfooé", true), ("a foo b", true), ("afoo", false)],
        ),
        (r"\Bfoo", &[("afoo", true), ("éfoo", false)]),
        (r"^[\d.]+$", &[("1.5", true), ("٣", false)]),
        (r"^[^\D]$", &[("5", true), ("٣", false), ("a", false)]),
        (r"^[\w-]+$", &[("a-b_c", true), ("é", false)]),
        (r"^[^\s]$", &[("\x0B", true), (" ", false)]),
        (r"^[\W\d]+$", &[("é1", true), ("a", false)]),
    ]);
}

#[test]
fn go_escapes() {
    check(&[
        (r"^\Q*.+\E$", &[("*.+", true), ("a", false)]),
        (r"^\Q(a|b)", &[("(a|b)", true), ("a", false)]),
        (r"^a\Q\E*$", &[("aaa", true)]),
        (r"^\<a\>$", &[("<a>", true), ("a", false)]),
        (r"^\101\0\12$", &[("A\0\n", true)]),
        (r"^\x41\x{1F9AD}$", &[("A🦭", true)]),
        (r"^\a\f\t\n\r\v$", &[("\x07\x0C\t\n\r\x0B", true)]),
        (r"^\#\&\-\~\_\%\ \:\@\!\,$", &[("#&-~_% :@!,", true)]),
        (r"\Aab\z", &[("ab", true), ("ab\n", false)]),
        (r"^\pL+$", &[("héllo", true), ("h3", false)]),
        (r"^\p{Greek}+$", &[("αβ", true), ("ab", false)]),
        (r"^\p{^Greek}+$", &[("ab", true), ("α", false)]),
        (r"^\P{^Greek}$", &[("α", true), ("a", false)]),
        (r"^\PL$", &[("1", true), ("a", false)]),
        (r"^[\p{Greek}\d]+$", &[("α1", true), ("a", false)]),
    ]);
    check_refused(&[
        r"\C",
        r"\1",
        r"(a)\1",
        r"\8",
        r"\u0041",
        r"\e",
        r"\Z",
        r"\x4",
        r"\xG1",
        r"\x{}",
        r"\x{110000}",
        r"\x{41",
        r"\p",
        r"\p{Greek",
        r"\p{}",
        r"a\",
        r"\é",
    ]);
}

#[test]
fn classes_keep_go_meaning_for_rust_class_syntax() {
    check(&[
        (r"^[[a]$", &[("[", true), ("a", true), ("]", false)]),
        (r"^[a&&b]$", &[("&", true), ("a", true), ("c", false)]),
        (r"^[a~~b]$", &[("~", true), ("b", true)]),
        (r"^[--/]$", &[(".", true), ("-", true), ("0", false)]),
        (r"^[a-]$", &[("-", true), ("a", true)]),
        (r"^[]a]$", &[("]", true), ("a", true)]),
        (r"^[^]a]$", &[("b", true), ("]", false)]),
        (r"^[[:alpha:]]+$", &[("abC", true), ("é", false)]),
        (r"^[[:^alpha:]]$", &[("1", true), ("a", false)]),
        (r"^[[:word:][:space:]]+$", &[("a b_", true)]),
        (r"^[[:a]$", &[("[", true), (":", true), ("a", true)]),
        (r"^[\[\]]$", &[("[", true), ("]", true)]),
        (
            r"^[\x{D000}-\x{E000}]$",
            &[("\u{D7FF}", true), ("\u{E000}", true), ("a", false)],
        ),
        (r"^a|\x{D800}$", &[("a", true)]),
        ("^(?i)[k]$", &[("K", true), ("\u{212A}", true)]),
    ]);
    check_refused(&[
        "[a",
        "[]",
        "[^]",
        "[z-a]",
        "[a--b]",
        "[[:foo:]]",
        "[[:^^alpha:]]",
        r"[\Q]\E]",
        r"[a-\d]",
    ]);
}

#[test]
fn groups_and_flags() {
    check(&[
        ("^(?P<name>x)$", &[("x", true)]),
        ("^(?<name>x)$", &[("x", true)]),
        ("^(?P<1a>x)$", &[("x", true)]),
        ("^(?P<a>x)(?P<a>y)$", &[("xy", true)]),
        ("^(?i)ABC$", &[("abc", true)]),
        ("^(?i:A)b$", &[("ab", true), ("aB", false)]),
        ("^(?i)a(?-i)b$", &[("Ab", true), ("AB", false)]),
        ("^(?i-i)a$", &[("a", true), ("A", false)]),
        ("^(?ii)a$", &[("A", true)]),
        ("^a(?)b$", &[("ab", true)]),
        ("^(?:ab)+$", &[("abab", true)]),
        ("(?s)a.b", &[("a\nb", true)]),
        ("a.b", &[("a\nb", false)]),
        ("(?m)^b$", &[("a\nb\nc", true)]),
        ("^b$", &[("a\nb\nc", false)]),
        ("^(a|)$", &[("", true), ("a", true)]),
        ("^(a(b(c)))$", &[("abc", true)]),
        ("^((?i)a)b$", &[("Ab", true), ("AB", false)]),
        ("^(?U)a+$", &[("aaa", true)]),
    ]);
    check_refused(&[
        "(a",
        "a)",
        "(?x)a",
        "(?u)a",
        "(?R)a",
        "(?-)a",
        "(?i-)a",
        "(?--i)a",
        "(?P<>a)",
        "(?P<a-b>x)",
        "(?P<name",
        "(?P=name)",
        "(?=a)",
        "(?!a)",
        "(?<=a)b",
        "(?#comment)",
        "(?'n'a)",
    ]);
}

#[test]
fn bytes_are_read_as_go_reads_them() {
    let one_per_byte = Regex::new(r"^/\x{FFFD}{3}$").unwrap();
    assert!(
        one_per_byte.is_match_bytes(b"/\xF0\x9F\x98"),
        "each bad byte is one U+FFFD"
    );
    assert!(!Regex::new("^/.$").unwrap().is_match_bytes(b"/\xF0\x9F\x98"));
    assert!(Regex::new("^/é$").unwrap().is_match_bytes("/é".as_bytes()));
    let r = super::url("https://example.com/%F0%9F%98");
    assert!(r.hits(r"PathRegexp(`^/\x{FFFD}{3}$`)"));
    assert!(super::url("https://example.com/%FF").hits("PathRegexp(`^/.$`)"));
}

#[test]
fn regexp_errors_name_the_rule_argument() {
    let e = parse("PathRegexp(`a**`)").unwrap_err();
    assert_eq!(e.pos, 11);
    assert!(
        e.message.contains("invalid nested repetition operator"),
        "{e}"
    );
    assert!(e.message.contains("Go syntax"), "{e}");
    let e = parse("HostRegexp(`a{1001}`)").unwrap_err();
    assert!(e.message.contains("invalid repeat count: `{1001}`"), "{e}");
    let e = Regex::new("ab(").unwrap_err();
    assert_eq!(e.message, "missing closing )");
}

#[test]
fn the_source_is_kept_for_printing() {
    let rule = parse(r"PathRegexp(`^/{id:\d+}$`)").unwrap();
    assert_eq!(rule.to_string(), r"PathRegexp(`^/{id:\d+}$`)");
    assert_eq!(Regex::new("a{").unwrap(), Regex::new("a{").unwrap());
    assert_ne!(Regex::new("a{").unwrap(), Regex::new(r"a\{").unwrap());
}
