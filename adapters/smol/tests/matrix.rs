//! The adapter conformance matrix of `switchboard-rt`, on smol.

struct SmolTests;

impl switchboard_rt::testing::Adapter for SmolTests {
    type Runtime = switchboard_smol::Smol;
    fn runtime() -> Self::Runtime {
        switchboard_smol::Smol
    }
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        smol::block_on(future)
    }
}

switchboard_rt::adapter_matrix!(switchboard_rt::testing::Async<SmolTests>);
switchboard_rt::direct_suite!(SmolTests);
