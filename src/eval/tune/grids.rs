//! The grid of values each model's search walks, and the parameters a point of it stands for.

use crate::algo::{als, bpr, itemknn, rp3beta};

/// One setting's values, smallest first, and where the search starts.
pub struct Axis {
    pub name: &'static str,
    pub values: &'static [f64],
    pub start: usize,
}

pub const ALS_AXES: [Axis; 3] = [
    Axis {
        name: "factors",
        values: &[32.0, 64.0, 128.0],
        start: 1,
    },
    Axis {
        name: "regularization",
        values: &[0.01, 0.05, 0.5, 2.0, 10.0, 50.0],
        start: 1,
    },
    Axis {
        name: "alpha",
        values: &[0.5, 1.0, 2.0, 5.0, 10.0],
        start: 2,
    },
];

pub const BPR_AXES: [Axis; 3] = [
    Axis {
        name: "learning_rate",
        values: &[0.01, 0.02, 0.05, 0.1],
        start: 2,
    },
    Axis {
        name: "regularization",
        values: &[0.001, 0.003, 0.01, 0.03, 0.1],
        start: 2,
    },
    Axis {
        name: "epochs",
        values: &[50.0, 100.0, 200.0],
        start: 1,
    },
];

pub const ITEMKNN_AXES: [Axis; 2] = [
    Axis {
        name: "neighbours",
        values: &[25.0, 50.0, 100.0, 200.0, 400.0],
        start: 2,
    },
    Axis {
        name: "shrinkage",
        values: &[0.0, 10.0, 50.0, 100.0, 200.0],
        start: 1,
    },
];

pub const EASE_AXES: [Axis; 1] = [Axis {
    name: "lambda",
    values: &[10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0],
    start: 3,
}];

/// Half-lives in days; infinite: no decay. Starts at the server's old default, 14 days.
pub const HALF_LIFE_AXES: [Axis; 1] = [Axis {
    name: "half_life_days",
    values: &[0.25, 1.0, 3.0, 7.0, 14.0, 30.0, 90.0, 365.0, f64::INFINITY],
    start: 4,
}];

/// Half-lives of recency inside a history, as shares of its length (`algo::recency`); infinite:
/// every entry weighs alike, where the search starts.
pub const HISTORY_AXES: [Axis; 1] = [Axis {
    name: "half_life_share",
    values: &[0.025, 0.05, 0.1, 0.2, 0.4, 0.8, f64::INFINITY],
    start: 6,
}];

/// ALS's parameters at the values of [`ALS_AXES`], the rest at their defaults.
pub fn als_params(v: &[f64]) -> als::Params {
    als::Params {
        factors: v[0] as usize,
        regularization: v[1] as f32,
        alpha: v[2] as f32,
        ..Default::default()
    }
}

/// BPR's parameters at the values of [`BPR_AXES`], the rest at their defaults.
pub fn bpr_params(v: &[f64]) -> bpr::Params {
    bpr::Params {
        learning_rate: v[0] as f32,
        regularization: v[1] as f32,
        iterations: v[2] as usize,
        ..Default::default()
    }
}

/// Item-to-item's parameters at the values of [`ITEMKNN_AXES`].
pub fn itemknn_params(v: &[f64]) -> itemknn::Params {
    itemknn::Params {
        k: v[0] as usize,
        shrinkage: v[1] as f32,
    }
}

pub const RP3BETA_AXES: [Axis; 3] = [
    Axis {
        name: "neighbours",
        values: &[25.0, 50.0, 100.0, 200.0, 400.0],
        start: 2,
    },
    Axis {
        name: "alpha",
        values: &[0.25, 0.5, 0.75, 1.0, 1.5],
        start: 3,
    },
    Axis {
        name: "beta",
        values: &[0.0, 0.1, 0.2, 0.3, 0.4, 0.6],
        start: 3,
    },
];

/// RP3beta's parameters at the values of [`RP3BETA_AXES`].
pub fn rp3beta_params(v: &[f64]) -> rp3beta::Params {
    rp3beta::Params {
        k: v[0] as usize,
        alpha: v[1] as f32,
        beta: v[2] as f32,
    }
}
