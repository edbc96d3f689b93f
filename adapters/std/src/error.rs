//! Why a driver stopped, and who was wrong: one type for every Switchboard driver, blocking or
//! async, defined once in `switchboard-rt`.

pub use switchboard_rt::DriverError;
