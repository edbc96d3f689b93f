//! What a receiver hands on: the header, then the data as it arrives.

use bytes::Bytes;

/// What a receiver has learned once the header arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The sender's message.
    pub msg: String,
    /// The announced (and, on success, received) data length.
    pub data_len: u64,
}

/// One piece of an incoming transfer, for `receive_with`.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// The message and the announced data length, before any data.
    Header(&'a Received),
    /// The next chunk of data as it arrived (a slice of the receive buffer, never empty).
    Data {
        /// The bytes.
        chunk: Bytes,
        /// Data bytes received so far, this chunk included.
        received: u64,
        /// The announced total.
        total: u64,
    },
}
