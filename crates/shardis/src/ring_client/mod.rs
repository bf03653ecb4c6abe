//! Ring mode placeholder for the lead's working copy (the real module lives in /work/main).

use std::sync::Arc;

use redis::{Cmd, Pipeline, Value};

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::stats::Stats;

#[derive(Clone, Debug, Default)]
pub(crate) struct RingConfig {}

pub(crate) struct RingState {}

impl RingState {
    pub async fn connect(_config: RingConfig, _settings: Settings) -> Result<Arc<RingState>> {
        Err(Error::Config("ring mode is not available yet".into()))
    }
    pub async fn run(&self, _cmd: &Cmd) -> Result<Value> {
        Err(Error::Config("ring mode is not available yet".into()))
    }
    pub async fn run_pipeline(&self, _p: &Pipeline, _o: usize, _c: usize) -> Result<Vec<Value>> {
        Err(Error::Config("ring mode is not available yet".into()))
    }
    pub async fn on_all_nodes(&self, _cmd: &Cmd) -> Result<Vec<(String, Value)>> {
        Err(Error::Config("ring mode is not available yet".into()))
    }
    pub fn stats(&self) -> Stats {
        Stats::default()
    }
}
