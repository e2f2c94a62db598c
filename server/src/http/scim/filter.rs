//! SCIM filters (RFC 7644 §3.4.2.2): `eq ne co sw ew gt ge lt le pr`, `and`, `or`, `not`,
//! parentheses and value paths (`emails[type eq "work"]`), evaluated over a resource's SCIM
//! JSON — so users and groups are filtered by the same code, on every attribute they return.
//! Strings compare case-insensitively except for the caseExact attributes (`id`,
//! `externalId`, `$ref`, `members.value`); a multi-valued attribute matches if any value
//! does, and a complex one compares its `value` sub-attribute.

use std::fmt;

use serde_json::Value;

use super::ScimError;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Co => "co",
            Op::Sw => "sw",
            Op::Ew => "ew",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
        }
    }
}

/// An attribute named in a filter: an optional schema URN, the attribute, a sub-attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.urn {
            write!(f, "{u}:")?;
        }
        write!(f, "{}", self.attr)?;
        if let Some(s) = &self.sub {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    Compare(AttrPath, Op, Value),
    /// `attr[filter]`: some value of the multi-valued `attr` satisfies `filter`.
    ValuePath(AttrPath, Box<Filter>),
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::And(a, b) => write!(f, "({a} and {b})"),
            Filter::Or(a, b) => write!(f, "({a} or {b})"),
            Filter::Not(a) => write!(f, "not ({a})"),
            Filter::Present(p) => write!(f, "{p} pr"),
            Filter::Compare(p, op, v) => write!(f, "{p} {} {v}", op.as_str()),
            Filter::ValuePath(p, inner) => write!(f, "{p}[{inner}]"),
        }
    }
}

/// `urn:…:Schema:attr.sub` → (urn, attr, sub). The URN is everything before the last `:`
/// (schema URNs contain dots, as in `2.0`, so they are split off first).
pub fn split_attr(s: &str) -> (Option<String>, String, Option<String>) {
    let (urn, rest) = match s.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("urn:") => match s.rsplit_once(':') {
            Some((u, r)) => (Some(u.to_owned()), r),
            None => (None, s),
        },
        _ => (None, s),
    };
    match rest.split_once('.') {
        Some((a, sub)) => (urn, a.to_owned(), Some(sub.to_owned())),
        None => (urn, rest.to_owned(), None),
    }
}

fn attr_path(s: &str) -> AttrPath {
    let (urn, attr, sub) = split_attr(s);
    AttrPath { urn, attr, sub }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Value(Value),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
}

fn invalid(f: &str, why: impl fmt::Display) -> ScimError {
    ScimError::bad("invalidFilter", format!("filter {f:?}: {why}"))
}

fn tokens(f: &str) -> Result<Vec<Token>, ScimError> {
    let mut out = Vec::new();
    let chars: Vec<char> = f.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' | ')' | '[' | ']' => {
                out.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '[' => Token::OpenBracket,
                    _ => Token::CloseBracket,
                });
                i += 1;
            }
            '"' => {
                // A JSON string: find its closing quote, honouring escapes.
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                if i >= chars.len() {
                    return Err(invalid(f, "unterminated string"));
                }
                i += 1;
                let text: String = chars[start..i].iter().collect();
                let v: String = serde_json::from_str(&text).map_err(|e| invalid(f, e))?;
                out.push(Token::Value(Value::String(v)));
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !"()[]\"".contains(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

/// A JSON number literal. Integers stay exact; anything else goes through the standard
/// library's correctly rounded float parser, because serde_json's default fast path can be
/// one unit off, and then a filter written back (as the shortest round-trip form) would not
/// parse to the same value (the fuzzer found `userName eq 577777777715233630452`).
fn number(w: &str) -> Option<serde_json::Number> {
    // Only JSON's number grammar: Rust's parser also takes "inf", "NaN" and "+1".
    serde_json::from_str::<serde_json::Number>(w).ok()?;
    if let Ok(i) = w.parse::<i64>() {
        return Some(i.into());
    }
    if let Ok(u) = w.parse::<u64>() {
        return Some(u.into());
    }
    w.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
}

/// A literal after a comparison operator: a string, true/false/null or a number.
fn literal(t: Option<Token>, f: &str) -> Result<Value, ScimError> {
    match t {
        Some(Token::Value(v)) => Ok(v),
        Some(Token::Word(w)) => match w.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            "null" => Ok(Value::Null),
            _ => number(&w)
                .map(Value::Number)
                .ok_or_else(|| invalid(f, format!("{w:?} is not a value (strings are quoted)"))),
        },
        _ => Err(invalid(f, "a comparison needs a value")),
    }
}

struct Parser<'a> {
    f: &'a str,
    toks: Vec<Token>,
    at: usize,
    /// Nesting depth, bounded so a hostile filter cannot exhaust the stack.
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(k))
    }

    fn or(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.at += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.at += 1;
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn nested(&mut self, close: Token) -> Result<Filter, ScimError> {
        self.depth += 1;
        if self.depth > 32 {
            return Err(invalid(self.f, "nested too deeply"));
        }
        let inner = self.or()?;
        self.depth -= 1;
        if self.next() != Some(close) {
            return Err(invalid(self.f, "unbalanced parentheses or brackets"));
        }
        Ok(inner)
    }

    fn unary(&mut self) -> Result<Filter, ScimError> {
        if self.keyword("not") {
            self.at += 1;
            if self.next() != Some(Token::Open) {
                return Err(invalid(self.f, "`not` takes a parenthesised filter"));
            }
            return Ok(Filter::Not(Box::new(self.nested(Token::Close)?)));
        }
        match self.next() {
            Some(Token::Open) => self.nested(Token::Close),
            Some(Token::Word(w)) => {
                let path = attr_path(&w);
                if self.peek() == Some(&Token::OpenBracket) {
                    self.at += 1;
                    let inner = self.nested(Token::CloseBracket)?;
                    return Ok(Filter::ValuePath(path, Box::new(inner)));
                }
                match self.next() {
                    Some(Token::Word(op)) if op.eq_ignore_ascii_case("pr") => Ok(Filter::Present(path)),
                    Some(Token::Word(op)) => {
                        let op = Op::parse(&op)
                            .ok_or_else(|| invalid(self.f, format!("unknown operator {op:?}")))?;
                        let v = literal(self.next(), self.f)?;
                        Ok(Filter::Compare(path, op, v))
                    }
                    _ => Err(invalid(self.f, format!("{w:?} needs an operator"))),
                }
            }
            _ => Err(invalid(self.f, "expected an attribute")),
        }
    }
}

/// Parses a filter; a bad one is 400 `invalidFilter`.
pub fn parse(f: &str) -> Result<Filter, ScimError> {
    if f.len() > 4096 {
        return Err(invalid(&f[..0], "longer than 4096 bytes"));
    }
    let mut p = Parser { f, toks: tokens(f)?, at: 0, depth: 0 };
    if p.toks.is_empty() {
        return Err(invalid(f, "empty"));
    }
    let out = p.or()?;
    if p.at != p.toks.len() {
        return Err(invalid(f, "unexpected text after the filter"));
    }
    Ok(out)
}

/// The key of `obj` named `name`, case-insensitively (attribute names are).
pub(crate) fn key<'a>(obj: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a String> {
    obj.keys().find(|k| k.eq_ignore_ascii_case(name))
}

fn case_exact(p: &AttrPath) -> bool {
    let a = p.attr.to_ascii_lowercase();
    let sub = p.sub.as_deref().map(str::to_ascii_lowercase);
    matches!(a.as_str(), "id" | "externalid" | "$ref")
        || sub.as_deref() == Some("$ref")
        || (a == "members" && sub.as_deref().is_none_or(|s| s == "value"))
}

/// The values `p` names in `root` (several for a multi-valued attribute).
fn values<'a>(root: &'a Value, p: &AttrPath) -> Vec<&'a Value> {
    let Some(mut obj) = root.as_object() else { return Vec::new() };
    if let Some(u) = &p.urn {
        // The core schema's own URN names the resource itself.
        let core = u.to_ascii_lowercase().starts_with("urn:ietf:params:scim:schemas:core:");
        if !core {
            match key(obj, u).and_then(|k| obj.get(k)).and_then(Value::as_object) {
                Some(ext) => obj = ext,
                None => return Vec::new(),
            }
        }
    }
    let Some(v) = key(obj, &p.attr).and_then(|k| obj.get(k)) else { return Vec::new() };
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    items
        .into_iter()
        .filter_map(|item| match (item, &p.sub) {
            (Value::Object(o), Some(s)) => key(o, s).and_then(|k| o.get(k)),
            // A complex value compared as a whole compares its `value`.
            (Value::Object(o), None) => key(o, "value").and_then(|k| o.get(k)),
            (v, None) => Some(v),
            (_, Some(_)) => None,
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn compare(v: &Value, op: Op, lit: &Value, exact: bool) -> bool {
    use std::cmp::Ordering;
    let fold = |s: &str| if exact { s.to_owned() } else { s.to_lowercase() };
    let ordering: Option<Ordering> = match (v, lit) {
        (Value::String(a), Value::String(b)) => Some(fold(a).cmp(&fold(b))),
        (Value::Number(a), Value::Number(b)) => {
            a.as_f64().zip(b.as_f64()).and_then(|(a, b)| a.partial_cmp(&b))
        }
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        // Entra writes booleans as strings; compare them as the booleans they mean.
        (Value::Bool(a), Value::String(b)) => super::bool_value(&Value::String(b.clone())).map(|b| a.cmp(&b)),
        _ => None,
    };
    match op {
        Op::Eq => ordering == Some(Ordering::Equal),
        Op::Ne => ordering != Some(Ordering::Equal),
        Op::Gt => ordering == Some(Ordering::Greater),
        Op::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
        Op::Lt => ordering == Some(Ordering::Less),
        Op::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
        Op::Co | Op::Sw | Op::Ew => match (v, lit) {
            (Value::String(a), Value::String(b)) => {
                let (a, b) = (fold(a), fold(b));
                match op {
                    Op::Co => a.contains(&b),
                    Op::Sw => a.starts_with(&b),
                    _ => a.ends_with(&b),
                }
            }
            _ => false,
        },
    }
}

impl Filter {
    /// Whether the resource (or a multi-valued attribute's value) `root` satisfies this.
    pub fn matches(&self, root: &Value) -> bool {
        match self {
            Filter::And(a, b) => a.matches(root) && b.matches(root),
            Filter::Or(a, b) => a.matches(root) || b.matches(root),
            Filter::Not(a) => !a.matches(root),
            Filter::Present(p) => values(root, p).iter().any(|v| match v {
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                _ => true,
            }),
            Filter::Compare(p, Op::Ne, lit) => !Filter::Compare(p.clone(), Op::Eq, lit.clone()).matches(root),
            Filter::Compare(p, op, lit) => {
                let exact = case_exact(p);
                values(root, p).iter().any(|v| compare(v, *op, lit, exact))
            }
            Filter::ValuePath(p, inner) => {
                let Some(obj) = root.as_object() else { return false };
                let container = match &p.urn {
                    Some(u) if !u.to_ascii_lowercase().starts_with("urn:ietf:params:scim:schemas:core:") => {
                        key(obj, u).and_then(|k| obj.get(k)).and_then(Value::as_object)
                    }
                    _ => Some(obj),
                };
                container
                    .and_then(|o| key(o, &p.attr).and_then(|k| o.get(k)))
                    .and_then(Value::as_array)
                    .is_some_and(|items| items.iter().any(|i| inner.matches(i)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn big_numbers_written_back_parse_to_the_same_filter() {
        for text in [
            "userName eq 577777777715233630452",
            "x gt 1.5e300",
            "x lt -9223372036854775809",
            "x eq 18446744073709551615",
        ] {
            let f = parse(text).unwrap();
            assert_eq!(parse(&f.to_string()).unwrap(), f, "{text} → {f}");
        }
        assert!(parse("x eq NaN").is_err() && parse("x eq inf").is_err() && parse("x eq +1").is_err());
    }

    fn user() -> Value {
        json!({
            "id": "AbC", "userName": "Alice@Example.com", "displayName": "Alice Ng", "active": true,
            "externalId": "00uX",
            "emails": [{"value": "alice@example.com", "type": "work", "primary": true},
                       {"value": "a@home.example", "type": "home"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Finance"},
        })
    }

    #[test]
    fn filters_identity_providers_send_match_as_specified() {
        let u = user();
        let yes = [
            r#"userName eq "alice@example.com""#,
            r#"USERNAME Eq "ALICE@EXAMPLE.COM""#,
            r#"externalId eq "00uX""#,
            r#"id eq "AbC""#,
            r#"emails.value eq "a@home.example""#,
            r#"emails[type eq "work"]"#,
            r#"emails[type eq "work" and value co "@example.com"]"#,
            r#"displayName sw "alice" and active eq true"#,
            r#"userName co "nope" or displayName ew "NG""#,
            r#"(userName co "nope" or displayName pr) and not (active eq false)"#,
            r#"emails pr"#,
            r#"active eq "True""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "finance""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "alice""#,
            r#"userName ne "bob@example.com""#,
            r#"userName gt "a" and userName lt "b""#,
        ];
        for f in yes {
            assert!(parse(f).unwrap().matches(&u), "{f}");
        }
        let no = [
            r#"externalId eq "00ux""#,
            r#"id eq "abc""#,
            r#"emails[type eq "other"]"#,
            r#"emails[type eq "home" and primary eq true]"#,
            r#"title pr"#,
            r#"active eq false"#,
            r#"userName eq "alice""#,
        ];
        for f in no {
            assert!(!parse(f).unwrap().matches(&u), "{f}");
        }
    }

    #[test]
    fn bad_filters_are_invalid_filter() {
        for f in [
            "",
            "userName",
            "userName eq",
            "userName xx \"a\"",
            "userName eq alice",
            "(userName eq \"a\"",
            "emails[type eq \"work\"",
            "userName eq \"a\" extra",
            "not userName eq \"a\"",
            "userName eq \"unterminated",
        ] {
            let e = parse(f).expect_err(f);
            assert_eq!(e.scim_type(), Some("invalidFilter"), "{f}");
        }
        let deep = format!("{}userName pr{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn a_filter_written_back_parses_the_same() {
        let f = parse(r#"emails[type eq "work" and not (value co "x")] or userName eq "a\"b""#).unwrap();
        assert_eq!(parse(&f.to_string()).unwrap(), f);
    }
}
