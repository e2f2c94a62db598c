//! aider's `.aider.chat.history.md` (Aider-AI/aider aider/io.py `InputOutput.__init__`,
//! `user_input`, `append_chat_history`; aider/coders/base_coder.py `get_announcements`).
//!
//! Markdown appended by every aider run in the project's git root:
//! - `# aider chat started at YYYY-MM-DD HH:MM:SS` opens a session (local wall time, no zone);
//! - each user input is written after a blank line as `#### <line>`, one per input line, so
//!   a run of `#### ` lines is one input; an empty input is `#### <blank>`;
//! - aider's own output is blockquoted (`> Main model: <name> with <format> edit format…`,
//!   `> Model: <name> with …` when one model does everything), the model's replies are plain
//!   markdown.
//!
//! A prompt is an input that reaches the model as the user's request: plain text, or one of
//! the chat-mode commands that carry a request (`/ask`, `/code`, `/architect`, `/context`
//! followed by text). Other commands (`/add`, `/drop`, `/run`, `/model`, `/commit`, …), `!`
//! shell lines, a bare mode switch and empty inputs are not. aider has no tool calls and no
//! MCP: it applies edits from the model's text, so `tool_calls` stays 0.
//!
//! The records hold no session id: one is derived from the file's key (the keyed
//! fingerprint of its path, so the id cannot confirm a guessed project path) and the header. They
//! hold no time but the header's, so a session's span is its start. The project is the
//! directory holding the file, which only the caller knows; nothing here sets it.

use ring::digest;

use super::{Carry, FileSessions, Rules};

/// Commands whose text is a request to the model (aider/commands.py `cmd_ask`, `cmd_code`,
/// `cmd_architect`, `cmd_context`: each sends its argument as a message in that mode).
const PROMPT_COMMANDS: [&str; 4] = ["/ask", "/code", "/architect", "/context"];

pub(super) fn line(line: &[u8], file: &mut FileSessions, rules: &Rules) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let was_input = matches!(file.carry, Carry::Aider { in_input: true });
    let input = line.strip_prefix(b"#### ");
    file.carry = Carry::Aider { in_input: input.is_some() };
    if let Some(started) = line.strip_prefix(b"# aider chat started at ") {
        open(started, file, rules);
    } else if let Some(first) = input {
        // Later lines of a multi-line input belong to the input its first line opened.
        if !was_input
            && is_prompt(first)
            && let Some(t) = file.current()
        {
            t.prompts = t.prompts.saturating_add(1);
        }
    } else if let Some(model) = model(line)
        && let Some(t) = file.current()
    {
        t.model(model);
    }
}

fn open(stamp: &[u8], file: &mut FileSessions, rules: &Rules) {
    let stamp = stamp.trim_ascii();
    let Some(at_ms) = local_ms(stamp, rules.local_offset_s) else {
        // A header whose time does not parse opens no session: what follows is not counted
        // into the previous one either.
        file.current = None;
        return;
    };
    let mut key = rules.file_key.as_bytes().to_vec();
    key.push(b'\n');
    key.extend_from_slice(stamp);
    let id = format!("aider-{}", hex::encode(&digest::digest(&digest::SHA256, &key).as_ref()[..12]));
    file.session(&id).saw(at_ms);
    file.current = Some(id);
}

/// `YYYY-MM-DD HH:MM:SS` of the device's wall clock as Unix milliseconds.
fn local_ms(stamp: &[u8], offset_s: i32) -> Option<i64> {
    let s = std::str::from_utf8(stamp).ok()?;
    let (date, clock) = s.split_once(' ')?;
    let num = |t: &str| -> Option<i64> { t.bytes().all(|b| b.is_ascii_digit()).then(|| t.parse().ok())? };
    let d: Vec<i64> = date.split('-').map(num).collect::<Option<_>>()?;
    let c: Vec<i64> = clock.split(':').map(num).collect::<Option<_>>()?;
    let ([y, mo, da], [h, mi, se]) = (d.as_slice(), c.as_slice()) else { return None };
    let date = time::Date::from_calendar_date(
        i32::try_from(*y).ok()?,
        time::Month::try_from(u8::try_from(*mo).ok()?).ok()?,
        u8::try_from(*da).ok()?,
    )
    .ok()?;
    let clock =
        time::Time::from_hms(u8::try_from(*h).ok()?, u8::try_from(*mi).ok()?, u8::try_from(*se).ok()?)
            .ok()?;
    let utc = time::PrimitiveDateTime::new(date, clock).assume_utc().unix_timestamp();
    utc.checked_sub(i64::from(offset_s))?.checked_mul(1000)
}

fn is_prompt(text: &[u8]) -> bool {
    let text = text.trim_ascii();
    if text.is_empty() || text == b"<blank>" || text.starts_with(b"!") {
        return false;
    }
    if !text.starts_with(b"/") {
        return true;
    }
    let (command, rest) = match text.iter().position(u8::is_ascii_whitespace) {
        Some(i) => (&text[..i], text[i..].trim_ascii()),
        None => (text, &b""[..]),
    };
    PROMPT_COMMANDS.iter().any(|c| c.as_bytes() == command) && !rest.is_empty()
}

/// The model of `> Main model: <name> with …` or `> Model: <name> with …`.
fn model(line: &[u8]) -> Option<&str> {
    let rest = line.strip_prefix(b"> Main model: ").or_else(|| line.strip_prefix(b"> Model: "))?;
    let rest = std::str::from_utf8(rest).ok()?;
    let (name, _) = rest.split_once(" with ")?;
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules { file_key: "src/app/.aider.chat.history.md".into(), local_offset_s: 3600, ..Rules::default() }
    }

    fn read(text: &str, rules: &Rules) -> FileSessions {
        let mut f = FileSessions::default();
        for l in text.split('\n') {
            line(l.as_bytes(), &mut f, rules);
        }
        f
    }

    const HISTORY: &str = "
# aider chat started at 2025-03-04 10:20:30

> /home/u/.local/bin/aider --model sonnet  
> Aider v0.75.1  
> Main model: anthropic/claude-3-7-sonnet-20250219 with diff edit format, infinite output  
> Weak model: anthropic/claude-3-5-haiku-20241022  
> Git repo: .git with 12 files  

#### /add src/main.py  
> Added src/main.py to the chat  

#### Refactor the parser  
#### so that it streams  
#### and handles errors.  

Sure, here is the change.

#### <blank>  

#### /ask why is this slow?  

Because it reads the whole file.

#### /ask  

#### /run cargo test  
#### !ls  
#### /model gpt-4o  
> Model: gpt-4o with diff edit format  

#### /architect split the module  

# aider chat started at 2025-03-05 08:00:00

> Aider v0.75.1  

#### /code add tests  
";

    #[test]
    fn sessions_prompts_and_models() {
        let f = read(HISTORY, &rules());
        assert_eq!(f.sessions.len(), 2);
        let by_start: Vec<_> = {
            let mut v: Vec<_> = f.sessions.values().collect();
            v.sort_by_key(|t| t.started_at_ms);
            v
        };
        let (a, b) = (by_start[0], by_start[1]);
        // 10:20:30 at UTC+1 is 09:20:30Z.
        assert_eq!(a.started_at_ms, crate::detect::activity::rfc3339_ms("2025-03-04T09:20:30Z"));
        assert_eq!(a.ended_at_ms, a.started_at_ms);
        // The multi-line request, `/ask why…`, `/architect split…`.
        assert_eq!(a.prompts, 3);
        assert_eq!(a.models.iter().collect::<Vec<_>>(), ["anthropic/claude-3-7-sonnet-20250219", "gpt-4o"]);
        assert_eq!((a.tool_calls, a.mcp.len()), (0, 0));
        // No `Main model:` line: no model, not a guess.
        assert_eq!((b.prompts, b.models.len()), (1, 0));
        assert!(a.session_id.starts_with("aider-") && a.session_id.len() == 6 + 24);
        assert!(f.sessions.values().all(|t| t.project.is_none()));
    }

    #[test]
    fn session_ids_are_stable_per_file_and_header() {
        let once = read(HISTORY, &rules());
        assert_eq!(once, read(HISTORY, &rules()));
        let elsewhere = read(HISTORY, &Rules { file_key: "other/.aider.chat.history.md".into(), ..rules() });
        assert!(once.sessions.keys().all(|k| !elsewhere.sessions.contains_key(k)));
    }

    #[test]
    fn an_input_split_across_looks_is_counted_once() {
        let mut f = FileSessions::default();
        let r = rules();
        for l in ["# aider chat started at 2025-03-04 10:20:30", "", "#### first line  "] {
            line(l.as_bytes(), &mut f, &r);
        }
        // The carried state survives the agent's persistence between looks.
        let mut f: FileSessions = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        for l in ["#### second line\r", "", "reply", "", "#### next"] {
            line(l.as_bytes(), &mut f, &r);
        }
        assert_eq!(f.sessions.values().next().unwrap().prompts, 2);
    }

    #[test]
    fn garbage_is_not_counted() {
        let f = read(
            "#### before any header\n# aider chat started at yesterday\n#### after a bad header\n\u{0}\u{7f}\n> Main model: \n",
            &rules(),
        );
        assert!(f.sessions.is_empty());
        let mut f = FileSessions::default();
        let r = rules();
        line(b"# aider chat started at 2025-03-04 10:20:30", &mut f, &r);
        line(&[0xff, 0xfe, 0x00], &mut f, &r);
        line(b"> Main model: \xff\xfe with diff edit format", &mut f, &r);
        line(b"> Main model: a model with spaces with diff", &mut f, &r);
        let t = f.sessions.values().next().unwrap();
        assert_eq!((t.prompts, t.models.len()), (0, 0));
    }
}
