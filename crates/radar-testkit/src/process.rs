//! Child processes a test starts, and the ports they listen on.

use std::process::Child;

/// Kills the child if the test fails before it stops it on purpose.
#[derive(Debug)]
pub struct KillOnDrop(pub Option<Child>);

impl KillOnDrop {
    /// The child, to stop on purpose (a signal, then `wait_with_output`).
    pub fn take(mut self) -> Child {
        self.0.take().unwrap()
    }

    /// The running child.
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free loopback port (free when asked: the child binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
