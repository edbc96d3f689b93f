//! The adapter conformance matrix of `switchboard-rt`, on tokio.

struct TokioTests;

impl switchboard_rt::testing::Adapter for TokioTests {
    type Runtime = switchboard_tokio::Tokio;
    fn runtime() -> Self::Runtime {
        switchboard_tokio::Tokio
    }
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(future)
    }
}

switchboard_rt::adapter_matrix!(switchboard_rt::testing::Async<TokioTests>);
switchboard_rt::direct_suite!(TokioTests);
