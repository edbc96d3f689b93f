//! The adapter conformance matrix of `switchboard-rt`, on async-std.

struct AsyncStdTests;

impl switchboard_rt::testing::Adapter for AsyncStdTests {
    type Runtime = switchboard_async_std::AsyncStd;
    fn runtime() -> Self::Runtime {
        switchboard_async_std::AsyncStd
    }
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        async_std::task::block_on(future)
    }
}

switchboard_rt::adapter_matrix!(switchboard_rt::testing::Async<AsyncStdTests>);
// Both ends streaming through `Direct` at once stalls for seconds at a time on async-std's
// TcpStream (it recovers; tokio and smol do not stall): not yet understood, so not run here.
switchboard_rt::direct_suite!(
    AsyncStdTests,
    known_stall = "async-std: full-duplex Direct streaming stalls for seconds (under investigation)"
);
