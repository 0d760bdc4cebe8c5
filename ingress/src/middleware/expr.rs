//! Træfik's circuit-breaker expressions (vulcand/oxy's predicate language):
//!
//! ```text
//!  expr  := and ("||" and)*          and := atom ("&&" atom)*
//!  atom  := "(" expr ")" | call op number
//!  call  := NetworkErrorRatio() | ResponseCodeRatio(from, to, dividedByFrom, dividedByTo)
//!         | LatencyAtQuantileMS(quantile) | RequestThreshold()
//!  op    := > | >= | < | <= | == | !=
//! ```
//! Parsed once into a tree and evaluated against [`Window`] metrics.

use std::fmt;

/// The metrics an expression reads.
pub trait Window {
    /// Share of responses that were 502 or 504.
    fn network_error_ratio(&self) -> f64;
    /// Responses with a status in `from..to` over those in `by_from..by_to`; 0 when the
    /// divisor is 0.
    fn response_code_ratio(&self, from: u16, to: u16, by_from: u16, by_to: u16) -> f64;
    /// Latency at `quantile` (percent, like 50.0) in whole milliseconds.
    fn latency_at_quantile_ms(&self, quantile: f64) -> f64;
    /// Requests counted.
    fn total(&self) -> u64;
}

/// A metric read by an expression.
#[derive(Debug, Clone, PartialEq)]
enum Metric {
    NetworkErrorRatio,
    ResponseCodeRatio([u16; 4]),
    LatencyAtQuantileMs(f64),
    RequestThreshold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Compare(Metric, Op, f64),
    And(Vec<Node>),
    Or(Vec<Node>),
}

/// A parsed expression.
#[derive(Debug, Clone)]
pub struct Expr {
    text: String,
    root: Node,
}

impl PartialEq for Expr {
    fn eq(&self, other: &Expr) -> bool {
        self.text == other.text
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Expr {
    /// Parse `text`; the error says where and what was expected.
    pub fn parse(text: &str) -> Result<Expr, String> {
        let mut p = Parser { text, pos: 0 };
        let root = p.or()?;
        p.skip_space();
        if p.pos < text.len() {
            return Err(p.error("`&&`, `||` or the end"));
        }
        Ok(Expr {
            text: text.to_string(),
            root,
        })
    }

    /// Whether the expression holds for `w`.
    pub fn holds(&self, w: &dyn Window) -> bool {
        eval(&self.root, w)
    }
}

fn eval(node: &Node, w: &dyn Window) -> bool {
    match node {
        Node::And(all) => all.iter().all(|n| eval(n, w)),
        Node::Or(any) => any.iter().any(|n| eval(n, w)),
        Node::Compare(metric, op, value) => {
            let v = match metric {
                Metric::NetworkErrorRatio => w.network_error_ratio(),
                Metric::ResponseCodeRatio([a, b, c, d]) => w.response_code_ratio(*a, *b, *c, *d),
                Metric::LatencyAtQuantileMs(q) => w.latency_at_quantile_ms(*q),
                Metric::RequestThreshold => w.total() as f64,
            };
            match op {
                Op::Gt => v > *value,
                Op::Ge => v >= *value,
                Op::Lt => v < *value,
                Op::Le => v <= *value,
                Op::Eq => v == *value,
                Op::Ne => v != *value,
            }
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn skip_space(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn error(&self, expected: &str) -> String {
        let found = self.rest().chars().take(12).collect::<String>();
        let found = if found.is_empty() {
            "the end".to_string()
        } else {
            format!("`{found}`")
        };
        format!("at {}: expected {expected}, found {found}", self.pos)
    }

    fn or(&mut self) -> Result<Node, String> {
        let mut items = vec![self.and()?];
        while self.eat("||") {
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Node::Or(items)
        })
    }

    fn and(&mut self) -> Result<Node, String> {
        let mut items = vec![self.atom()?];
        while self.eat("&&") {
            items.push(self.atom()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Node::And(items)
        })
    }

    fn atom(&mut self) -> Result<Node, String> {
        if self.eat("(") {
            let inner = self.or()?;
            if !self.eat(")") {
                return Err(self.error("`)`"));
            }
            return Ok(inner);
        }
        let metric = self.call()?;
        let op = self.op()?;
        let value = self.number()?;
        Ok(Node::Compare(metric, op, value))
    }

    fn call(&mut self) -> Result<Metric, String> {
        self.skip_space();
        let len = self
            .rest()
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(self.rest().len());
        let name = self.rest()[..len].to_string();
        let known = "NetworkErrorRatio(), ResponseCodeRatio(…), LatencyAtQuantileMS(…) or RequestThreshold()";
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(self.error(known));
        }
        let at = self.pos;
        self.pos += len;
        if !self.eat("(") {
            return Err(self.error("`(`"));
        }
        let mut args = Vec::new();
        if !self.eat(")") {
            loop {
                args.push(self.number()?);
                if self.eat(")") {
                    break;
                }
                if !self.eat(",") {
                    return Err(self.error("`,` or `)`"));
                }
            }
        }
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "at {at}: {name} takes {n} argument(s), got {}",
                    args.len()
                ))
            }
        };
        match name.as_str() {
            "NetworkErrorRatio" => arity(0).map(|()| Metric::NetworkErrorRatio),
            "RequestThreshold" => arity(0).map(|()| Metric::RequestThreshold),
            "LatencyAtQuantileMS" => {
                arity(1)?;
                let q = args[0];
                if !(q > 0.0 && q <= 100.0) {
                    return Err(format!("at {at}: the quantile {q} is not in (0, 100]"));
                }
                Ok(Metric::LatencyAtQuantileMs(q))
            }
            "ResponseCodeRatio" => {
                arity(4)?;
                let mut codes = [0u16; 4];
                for (c, a) in codes.iter_mut().zip(&args) {
                    if a.fract() != 0.0 || !(0.0..=1000.0).contains(a) {
                        return Err(format!("at {at}: {a} is not a status code"));
                    }
                    *c = *a as u16;
                }
                Ok(Metric::ResponseCodeRatio(codes))
            }
            other => Err(format!(
                "at {at}: unknown function `{other}`, expected {known}"
            )),
        }
    }

    fn op(&mut self) -> Result<Op, String> {
        for (token, op) in [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            ("<", Op::Lt),
        ] {
            if self.eat(token) {
                return Ok(op);
            }
        }
        Err(self.error("a comparison (>, >=, <, <=, ==, !=)"))
    }

    fn number(&mut self) -> Result<f64, String> {
        self.skip_space();
        let len = self
            .rest()
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(self.rest().len());
        let text = &self.rest()[..len];
        match text.parse::<f64>() {
            Ok(v) if !text.is_empty() => {
                self.pos += len;
                Ok(v)
            }
            _ => Err(self.error("a number")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed {
        net: f64,
        codes: Vec<(u16, u64)>,
        p50: f64,
    }

    impl Window for Fixed {
        fn network_error_ratio(&self) -> f64 {
            self.net
        }
        fn response_code_ratio(&self, a: u16, b: u16, c: u16, d: u16) -> f64 {
            let sum = |lo, hi| -> u64 {
                self.codes
                    .iter()
                    .filter(|(s, _)| (lo..hi).contains(s))
                    .map(|(_, n)| n)
                    .sum()
            };
            match sum(c, d) {
                0 => 0.0,
                by => sum(a, b) as f64 / by as f64,
            }
        }
        fn latency_at_quantile_ms(&self, _q: f64) -> f64 {
            self.p50
        }
        fn total(&self) -> u64 {
            self.codes.iter().map(|(_, n)| n).sum()
        }
    }

    fn w() -> Fixed {
        Fixed {
            net: 0.2,
            codes: vec![(200, 6), (500, 3), (503, 1)],
            p50: 120.0,
        }
    }

    #[test]
    fn træfiks_documented_expressions() {
        let cases = [
            ("NetworkErrorRatio() > 0.30", false),
            ("NetworkErrorRatio() > 0.10", true),
            ("ResponseCodeRatio(500, 600, 0, 600) > 0.25", true),
            ("ResponseCodeRatio(500, 600, 0, 600) > 0.50", false),
            ("LatencyAtQuantileMS(50.0) > 100", true),
            ("ResponseCodeRatio(500, 600, 0, 600) > 0.30 || NetworkErrorRatio() > 0.10", true),
            ("ResponseCodeRatio(500, 600, 0, 600) > 0.30 && RequestThreshold() >= 20", false),
            ("ResponseCodeRatio(500, 600, 0, 600) > 0.30 && RequestThreshold() >= 10", true),
            ("(NetworkErrorRatio() < 0.1 || LatencyAtQuantileMS(99.9) <= 120) && RequestThreshold() != 0", true),
            ("ResponseCodeRatio(200, 300, 600, 700) == 0", true),
        ];
        for (text, expected) in cases {
            let e = Expr::parse(text).unwrap_or_else(|m| panic!("{text}: {m}"));
            assert_eq!(e.holds(&w()), expected, "{text}");
        }
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (text, needle) in [
            ("", "expected NetworkErrorRatio()"),
            ("NetworkErrorRatio > 0.5", "expected `(`"),
            ("NetworkErrorRatio() 0.5", "a comparison"),
            ("NetworkErrorRatio() > ", "a number"),
            ("Foo() > 1", "unknown function `Foo`"),
            ("ResponseCodeRatio(500, 600) > 1", "takes 4 argument"),
            ("LatencyAtQuantileMS(0.0) > 1", "not in (0, 100]"),
            ("(NetworkErrorRatio() > 1", "expected `)`"),
            ("NetworkErrorRatio() > 1 &", "`&&`, `||` or the end"),
            ("0.5 < NetworkErrorRatio()", "expected NetworkErrorRatio()"),
        ] {
            let e = Expr::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
