//! Keys → what they mean in `pmr monit`, by mode. Pure: the app decides what each does.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing the filter after `/`.
    Filter,
    /// `d` asked "delete ...? y/n".
    Confirm,
    Help,
    /// Typing `action [param]` after `t`: the same keys as the filter.
    Trigger,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Quit,
    NextPane,
    PrevPane,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    StartFilter,
    Restart,
    Reload,
    Stop,
    Start,
    Delete,
    ScaleUp,
    ScaleDown,
    Trigger,
    Help,
    /// Filter mode: a character typed, one erased, Enter (keep), Esc (clear).
    FilterChar(char),
    FilterBack,
    FilterDone,
    FilterCancel,
    Yes,
    No,
    /// Leave help.
    Close,
    Nothing,
}

pub fn map(mode: Mode, k: KeyEvent) -> Cmd {
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    // Ctrl-C quits from anywhere: raw mode turns it into a key, not a SIGINT.
    if ctrl && matches!(k.code, KeyCode::Char('c')) {
        return Cmd::Quit;
    }
    match mode {
        Mode::Normal => normal(k),
        Mode::Filter | Mode::Trigger => match k.code {
            KeyCode::Enter => Cmd::FilterDone,
            KeyCode::Esc => Cmd::FilterCancel,
            KeyCode::Backspace => Cmd::FilterBack,
            KeyCode::Char(c) if !ctrl => Cmd::FilterChar(c),
            KeyCode::Up => Cmd::Up,
            KeyCode::Down => Cmd::Down,
            _ => Cmd::Nothing,
        },
        Mode::Confirm => match k.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => Cmd::Yes,
            _ => Cmd::No,
        },
        Mode::Help => match k.code {
            KeyCode::Char('q') if !ctrl => Cmd::Quit,
            _ => Cmd::Close,
        },
    }
}

fn normal(k: KeyEvent) -> Cmd {
    match k.code {
        KeyCode::Char('q') | KeyCode::Esc => Cmd::Quit,
        KeyCode::Tab | KeyCode::Right => Cmd::NextPane,
        KeyCode::BackTab | KeyCode::Left => Cmd::PrevPane,
        KeyCode::Up | KeyCode::Char('k') => Cmd::Up,
        KeyCode::Down | KeyCode::Char('j') => Cmd::Down,
        KeyCode::PageUp => Cmd::PageUp,
        KeyCode::PageDown => Cmd::PageDown,
        KeyCode::Home | KeyCode::Char('g') => Cmd::Top,
        KeyCode::End | KeyCode::Char('G') => Cmd::Bottom,
        KeyCode::Char('/') => Cmd::StartFilter,
        KeyCode::Char('r') => Cmd::Restart,
        KeyCode::Char('R') | KeyCode::Char('l') => Cmd::Reload,
        KeyCode::Char('s') => Cmd::Stop,
        KeyCode::Char('S') => Cmd::Start,
        KeyCode::Char('d') => Cmd::Delete,
        KeyCode::Char('+') => Cmd::ScaleUp,
        KeyCode::Char('-') => Cmd::ScaleDown,
        KeyCode::Char('t') => Cmd::Trigger,
        KeyCode::Char('?') | KeyCode::F(1) => Cmd::Help,
        _ => Cmd::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn the_same_letter_means_what_the_mode_says() {
        let r = key(KeyCode::Char('r'));
        assert_eq!(map(Mode::Normal, r), Cmd::Restart);
        assert_eq!(map(Mode::Filter, r), Cmd::FilterChar('r'));
        assert_eq!(map(Mode::Confirm, r), Cmd::No);
        assert_eq!(map(Mode::Confirm, key(KeyCode::Char('y'))), Cmd::Yes);
        assert_eq!(map(Mode::Help, r), Cmd::Close);
        let shift_r = KeyEvent::new(KeyCode::Char('R'), KeyModifiers::SHIFT);
        assert_eq!(map(Mode::Normal, shift_r), Cmd::Reload);
    }

    #[test]
    fn ctrl_c_quits_in_every_mode() {
        let c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        for m in [
            Mode::Normal,
            Mode::Filter,
            Mode::Confirm,
            Mode::Help,
            Mode::Trigger,
        ] {
            assert_eq!(map(m, c), Cmd::Quit, "{m:?}");
        }
        assert_eq!(map(Mode::Normal, key(KeyCode::Esc)), Cmd::Quit);
        assert_eq!(map(Mode::Filter, key(KeyCode::Esc)), Cmd::FilterCancel);
    }
}
