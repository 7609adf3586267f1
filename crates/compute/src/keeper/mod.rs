//! The instance keeper: the small process that is every instance's parent, so that instances
//! survive a hot upgrade of Flotilla and still never outlive Flotilla.
//!
//! Instances carry `PR_SET_PDEATHSIG = SIGKILL`, which the kernel fires when the thread that
//! forked them exits. Forked by Flotilla itself, they would die with the old process of a hot
//! upgrade. So Flotilla forks them through a keeper (`flotilla keeper SOCKET`, one per state
//! directory, socket `<state_dir>/keeper.sock`, mode 0600): a single-threaded process that
//! forks on request, reaps, and reports exits. Flotillas *attach* to it over the socket; the
//! keeper lives while at least one attached connection is open. When the last one closes —
//! Flotilla stopped, crashed or was SIGKILLed (the kernel closes its sockets) — the keeper
//! SIGKILLs every instance's process group and exits; its exit would fire their parent-death
//! signal anyway. A hot upgrade's successor attaches *before* its predecessor exits, so
//! ownership passes without a moment with no owner. If the keeper itself is killed, the
//! parent-death signal takes its instances, Flotilla sees them exit, and the next launch starts
//! a new keeper. Flotilla's own stop (SIGTERM) stops instances in order before it exits, so the
//! keeper finds none left.

mod client;
mod protocol;
mod server;

pub use client::KeeperCommand;
pub(crate) use client::KeeperHandle;
pub use protocol::{Reply, Request, VERSION};
pub use server::run;
