//! One thread kept for a daemon's visits to pods' namespaces: it waits for a check, enters the
//! pod's namespace, looks, returns to its own, and answers. A daemon checks interface names on
//! every ADD; starting and ending a thread for each (clone, stack, signal stack, exit, join)
//! cost more than the look itself and sat on the ADD's path before the first delegate.
//!
//! The thread is started on first use. If it ever fails to return to its own namespace it
//! answers the check it made (still right) and ends; the next check starts a new one. No other
//! work ever runs on it, so its visits cannot leak into anything else.

use std::fs::File;
use std::io;
use std::sync::mpsc::{self, Receiver, SendError, Sender};
use std::sync::{Mutex, PoisonError};

/// What one look answers: the namespace's interface names.
pub type Answer = io::Result<Vec<String>>;

/// One look: the namespace to enter, where to answer.
struct Job {
    netns: File,
    answer: Sender<Answer>,
}

/// The visitor's inbox; `None` before the first check.
static INBOX: Mutex<Option<Sender<Job>>> = Mutex::new(None);

/// Hand a look at `netns` to the visitor; the answer comes on the receiver.
pub fn look(netns: File) -> io::Result<Receiver<Answer>> {
    let (answer, answered) = mpsc::channel();
    let mut job = Job { netns, answer };
    let mut inbox = INBOX.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(sender) = inbox.as_ref() {
        match sender.send(job) {
            Ok(()) => return Ok(answered),
            // The thread has ended: a new one takes the check.
            Err(SendError(returned)) => job = returned,
        }
    }
    let (sender, jobs) = mpsc::channel();
    std::thread::Builder::new()
        .name("netns-visitor".into())
        .spawn(move || serve(&jobs))?;
    sender
        .send(job)
        .map_err(|_| io::Error::other("the namespace visitor thread ended at start"))?;
    *inbox = Some(sender);
    Ok(answered)
}

/// Wait for the answer of a check handed over by [`look`].
pub fn answer(answered: &Receiver<Answer>) -> Answer {
    answered
        .recv()
        .map_err(|_| io::Error::other("the namespace visitor thread ended before answering"))?
}

fn serve(jobs: &Receiver<Job>) {
    // Without its own namespace to come back to, the thread must not visit any.
    let Ok(home) = File::open("/proc/thread-self/ns/net") else {
        return;
    };
    for job in jobs {
        let (found, back) = super::visit(&home, &job.netns, super::link_names);
        let _ = job.answer.send(found);
        if back.is_err() {
            return;
        }
    }
}
