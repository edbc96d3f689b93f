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
switchboard_rt::direct_suite!(AsyncStdTests);
