//! The part of `sh` that package scripts use to start a server, without a shell: words, quotes,
//! `$VAR` / `${VAR}` / `${VAR:-default}` / `${VAR-default}` expansion, and `&&` (kept as a
//! separator so the caller can accept `cd dir && node x.js`). Everything that would need a real
//! shell (pipes, `;`, `||`, background `&`, redirections, subshells, command substitution) is
//! an error that names the construct.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    Word(String),
    /// `&&`
    And,
}

/// Split and expand `src`. The error names the construct that needs a real shell.
pub fn lex(src: &str, env: &BTreeMap<String, String>) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut word = String::new();
    // A word exists once it has a literal or quoted part (so `""` is an empty word, and an
    // unquoted expansion to nothing is no word at all, as in sh).
    let mut started = false;
    let mut i = 0;
    macro_rules! finish {
        () => {
            if started {
                out.push(Token::Word(std::mem::take(&mut word)));
                started = false;
            }
        };
    }
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' => {
                finish!();
                i += 1;
            }
            '#' if !started => break,
            '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '\'')
                    .ok_or("an unterminated ' quote")?;
                word.extend(&chars[i + 1..i + 1 + end]);
                started = true;
                i += end + 2;
            }
            '"' => {
                started = true;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("an unterminated \" quote".into()),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') if matches!(chars.get(i + 1), Some('$' | '"' | '\\' | '`')) => {
                            word.push(chars[i + 1]);
                            i += 2;
                        }
                        Some('`') => return Err(BACKTICKS.into()),
                        Some('$') => {
                            let (v, n) = dollar(&chars[i..], env)?;
                            word.push_str(&v);
                            i += n;
                        }
                        Some(&c) => {
                            word.push(c);
                            i += 1;
                        }
                    }
                }
            }
            '\\' => {
                if let Some(&n) = chars.get(i + 1) {
                    if n != '\n' {
                        word.push(n);
                        started = true;
                    }
                }
                i += 2;
            }
            '$' => {
                let (v, n) = dollar(&chars[i..], env)?;
                // Unquoted: the value is split into words, as sh does.
                for ch in v.chars() {
                    if ch.is_whitespace() {
                        finish!();
                    } else {
                        word.push(ch);
                        started = true;
                    }
                }
                i += n;
            }
            '&' if chars.get(i + 1) == Some(&'&') => {
                finish!();
                out.push(Token::And);
                i += 2;
            }
            '&' => return Err("a background `&`".into()),
            '|' if chars.get(i + 1) == Some(&'|') => return Err("`||`".into()),
            '|' => return Err("a pipe `|`".into()),
            ';' => return Err("`;`".into()),
            '>' | '<' => return Err(format!("a redirection `{c}`")),
            '(' | ')' => return Err("a subshell `( )`".into()),
            '`' => return Err(BACKTICKS.into()),
            _ => {
                word.push(c);
                started = true;
                i += 1;
            }
        }
    }
    if started {
        out.push(Token::Word(word));
    }
    Ok(out)
}

const BACKTICKS: &str = "command substitution with backticks";

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expand the `$…` at the start of `s`: its value and how many chars it took.
fn dollar(s: &[char], env: &BTreeMap<String, String>) -> Result<(String, usize), String> {
    match s.get(1) {
        Some('(') => Err("command substitution `$(...)`".into()),
        Some('{') => {
            let mut depth = 0;
            let end = s
                .iter()
                .enumerate()
                .skip(1)
                .find_map(|(i, &c)| {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(i);
                            }
                        }
                        _ => {}
                    }
                    None
                })
                .ok_or("an unterminated `${`")?;
            let inner: String = s[2..end].iter().collect();
            let name_len = inner.chars().take_while(|&c| is_name_char(c)).count();
            let (name, op) = inner.split_at(name_len);
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(format!("the parameter `${{{inner}}}`"));
            }
            let value = env.get(name);
            let v = if let Some(default) = op.strip_prefix(":-") {
                match value {
                    Some(v) if !v.is_empty() => v.clone(),
                    _ => expand_default(default, env)?,
                }
            } else if let Some(default) = op.strip_prefix('-') {
                match value {
                    Some(v) => v.clone(),
                    None => expand_default(default, env)?,
                }
            } else if op.is_empty() {
                value.cloned().unwrap_or_default()
            } else {
                return Err(format!("the expansion `${{{inner}}}`"));
            };
            Ok((v, end + 1))
        }
        Some(&c) if is_name_char(c) && !c.is_ascii_digit() => {
            let n = s[1..].iter().take_while(|&&c| is_name_char(c)).count();
            let name: String = s[1..1 + n].iter().collect();
            Ok((env.get(&name).cloned().unwrap_or_default(), 1 + n))
        }
        Some(&c) if c.is_ascii_digit() || "@*#?$!-".contains(c) => {
            Err(format!("the special parameter `${c}`"))
        }
        // A lone `$` is literal in sh.
        _ => Ok(("$".into(), 1)),
    }
}

/// The word of `${VAR:-word}`: quotes and expansions inside it, one word.
fn expand_default(src: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let words: Vec<String> = lex(src, env)?
        .into_iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w),
            Token::And => None,
        })
        .collect();
    Ok(words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("PORT", "3100"), ("EMPTY", ""), ("TWO", "a b")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn words(s: &str) -> Vec<String> {
        lex(s, &env())
            .unwrap()
            .into_iter()
            .map(|t| match t {
                Token::Word(w) => w,
                Token::And => "&&".into(),
            })
            .collect()
    }

    #[test]
    fn words_quotes_and_expansion() {
        assert_eq!(
            words("next start -p $PORT"),
            ["next", "start", "-p", "3100"]
        );
        assert_eq!(
            words("x ${PORT} ${PORT:-1} ${NOPE:-3000}"),
            ["x", "3100", "3100", "3000"]
        );
        assert_eq!(words("x ${EMPTY:-d} ${EMPTY-d} ${NOPE-d}"), ["x", "d", "d"]);
        assert_eq!(words("x ${EMPTY-d}y"), ["x", "y"]);
        assert_eq!(words("x $NOPE y"), ["x", "y"]);
        assert_eq!(words("x \"$NOPE\" y"), ["x", "", "y"]);
        assert_eq!(words("x $TWO \"$TWO\""), ["x", "a", "b", "a b"]);
        assert_eq!(
            words("x '$PORT' \"p=$PORT\" a\\ b"),
            ["x", "$PORT", "p=3100", "a b"]
        );
        assert_eq!(words("x ${NOPE:-$PORT}"), ["x", "3100"]);
        assert_eq!(words("x ${NOPE:-'y'}"), ["x", "y"]);
        assert_eq!(
            words("cd web && node s.js # comment"),
            ["cd", "web", "&&", "node", "s.js"]
        );
        assert_eq!(words("echo 5$ x"), ["echo", "5$", "x"]);
    }

    #[test]
    fn shell_constructs_are_named() {
        for (src, construct) in [
            ("a | b", "a pipe `|`"),
            ("a || b", "`||`"),
            ("a; b", "`;`"),
            ("a &", "a background `&`"),
            ("a > log", "a redirection `>`"),
            ("(a)", "a subshell `( )`"),
            ("a $(b)", "command substitution `$(...)`"),
            ("a \"$(b)\"", "command substitution `$(...)`"),
            ("a `b`", BACKTICKS),
            ("a $1", "the special parameter `$1`"),
            ("a ${X:=1}", "the expansion `${X:=1}`"),
            ("a 'b", "an unterminated ' quote"),
        ] {
            assert_eq!(lex(src, &env()).unwrap_err(), construct, "{src}");
        }
        // Quoted, they are just characters.
        assert_eq!(words("a '|' \";\" \\&"), ["a", "|", ";", "&"]);
    }
}
