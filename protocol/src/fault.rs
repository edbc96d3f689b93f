//! Who was wrong.
//!
//! Every error in this crate says whether the peer broke the protocol (its connection is closed;
//! other connections carry on) or the caller misused the API (the call is refused and the machine
//! is left as it was). Drivers use this to decide between closing a connection and returning an
//! error to the application.

/// The party at fault for an error.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Fault {
    /// The remote peer sent bytes that break the protocol, went silent past a deadline, or
    /// closed early. The connection is finished; nothing the caller does will fix it.
    Peer,
    /// The local caller misused the API or gave a bad configuration. The call was refused and the
    /// machine's state is unchanged.
    Caller,
}

/// Implemented by every error type in the crate.
pub trait Blame {
    /// Who caused this error.
    fn fault(&self) -> Fault;
}
