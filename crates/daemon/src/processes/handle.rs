//! The handle an instance task holds on its process: it waits for the exit and signals the
//! process (or its whole tree). A trait, so that the instance state machine runs against a
//! fake process in its unit tests; the real one is [`ChildHandle`](super::child::ChildHandle).

use nix::sys::signal::Signal;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::ExitStatus;
use std::task::{Context, Poll};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait Process: Send {
    fn pid(&self) -> u32;

    /// The exit status once the process has exited, reaping it. Once known it is kept: polling
    /// again returns it (so a wait dropped by a `select!` loses nothing).
    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>>;

    /// One signal to the process alone (`pmr sendSignal`).
    fn signal(&self, sig: Signal) -> nix::Result<()>;

    /// The stop sequence's signals. With `treekill`, the tree is looked at first while the
    /// process runs (its descendants, added to those seen before), and `sig` goes to every
    /// process of it and to its process group; once the process has been reaped, to those last
    /// seen. Without, `sig` goes to the process alone. `None`: only look at the tree (a stop
    /// by message still ends with the tree it had when it was asked to stop).
    fn signal_tree(&mut self, sig: Option<Signal>, treekill: bool) -> BoxFuture<'_, ()>;

    /// After the process was reaped (`treekill`): whether a process of its tree or group still
    /// runs.
    fn tree_alive(&self) -> BoxFuture<'static, bool>;
}

impl dyn Process {
    /// Wait for the exit (cancel-safe, see [`Process::poll_wait`]).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        std::future::poll_fn(|cx| self.poll_wait(cx)).await
    }
}
