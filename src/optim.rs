//! First-order optimizers that update a flat parameter slice from its gradient.
//!
//! Each parameter tensor gets its own [`OptimizerState`]; the update rules follow PyTorch's
//! `torch.optim.SGD` and `torch.optim.AdamW`, so a recipe written for PyTorch carries over.

use serde::Serialize;

use crate::error::{Error, Result};

/// An update rule and its hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Optimizer {
    /// Stochastic gradient descent with heavy-ball momentum:
    /// `v <- momentum * v + g`, `w <- w - learning_rate * v` (plain SGD when momentum is 0).
    Sgd {
        #[serde(serialize_with = "shortest_decimal")]
        learning_rate: f32,
        #[serde(serialize_with = "shortest_decimal")]
        momentum: f32,
    },
    /// Adam with decoupled weight decay (AdamW; plain Adam when `weight_decay` is 0):
    /// `w <- w (1 - learning_rate * weight_decay)`, then
    /// `m <- b1 m + (1 - b1) g`, `v <- b2 v + (1 - b2) g^2`,
    /// `w <- w - learning_rate * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + epsilon)`.
    Adam {
        #[serde(serialize_with = "shortest_decimal")]
        learning_rate: f32,
        #[serde(serialize_with = "shortest_decimal")]
        beta1: f32,
        #[serde(serialize_with = "shortest_decimal")]
        beta2: f32,
        #[serde(serialize_with = "shortest_decimal")]
        epsilon: f32,
        #[serde(serialize_with = "shortest_decimal")]
        weight_decay: f32,
    },
}

/// Serializes an `f32` as the shortest decimal that reads back as it, so that a learning rate of
/// `0.1f32` appears as `0.1` in JSON instead of `0.10000000149011612`.
fn shortest_decimal<S: serde::Serializer>(
    value: &f32,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    let decimal = value
        .to_string()
        .parse::<f64>()
        .unwrap_or(f64::from(*value));
    serializer.serialize_f64(decimal)
}

impl Optimizer {
    /// Plain SGD without momentum.
    pub fn sgd(learning_rate: f32) -> Self {
        Optimizer::Sgd {
            learning_rate,
            momentum: 0.0,
        }
    }

    /// Adam with PyTorch's defaults (betas 0.9 and 0.999, epsilon 1e-8) and no weight decay.
    pub fn adam(learning_rate: f32) -> Self {
        Optimizer::Adam {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// Checks the hyperparameters.
    ///
    /// # Errors
    /// Returns [`Error::InvalidParameter`] for a learning rate that is not finite and positive,
    /// momentum or betas outside `[0, 1)`, a non-positive epsilon, or a negative weight decay.
    pub fn validate(&self) -> Result<()> {
        let check = |name: &'static str, value: f32, valid: bool, expected: &str| {
            if valid && value.is_finite() {
                Ok(())
            } else {
                Err(Error::invalid_parameter(name, value, expected))
            }
        };
        match *self {
            Optimizer::Sgd {
                learning_rate,
                momentum,
            } => {
                check(
                    "learning rate",
                    learning_rate,
                    learning_rate > 0.0,
                    "a number above 0, for example 0.1",
                )?;
                check(
                    "momentum",
                    momentum,
                    (0.0..1.0).contains(&momentum),
                    "a number in [0, 1)",
                )
            }
            Optimizer::Adam {
                learning_rate,
                beta1,
                beta2,
                epsilon,
                weight_decay,
            } => {
                check(
                    "learning rate",
                    learning_rate,
                    learning_rate > 0.0,
                    "a number above 0, for example 1e-3",
                )?;
                check(
                    "beta1",
                    beta1,
                    (0.0..1.0).contains(&beta1),
                    "a number in [0, 1)",
                )?;
                check(
                    "beta2",
                    beta2,
                    (0.0..1.0).contains(&beta2),
                    "a number in [0, 1)",
                )?;
                check(
                    "epsilon",
                    epsilon,
                    epsilon > 0.0,
                    "a number above 0, for example 1e-8",
                )?;
                check(
                    "weight decay",
                    weight_decay,
                    weight_decay >= 0.0,
                    "a number at or above 0",
                )
            }
        }
    }
}

/// The running state of one parameter tensor under an [`Optimizer`].
#[derive(Debug, Clone)]
pub struct OptimizerState {
    optimizer: Optimizer,
    first_moment: Vec<f32>,
    second_moment: Vec<f32>,
    steps: i32,
}

impl OptimizerState {
    /// Creates zeroed state for a tensor of `len` parameters.
    pub fn new(optimizer: Optimizer, len: usize) -> Self {
        let second_len = match optimizer {
            Optimizer::Sgd { .. } => 0,
            Optimizer::Adam { .. } => len,
        };
        OptimizerState {
            optimizer,
            first_moment: vec![0.0; len],
            second_moment: vec![0.0; second_len],
            steps: 0,
        }
    }

    /// Applies one update to `parameters` from `gradients`.
    ///
    /// # Errors
    /// Returns [`Error::ShapeMismatch`] when the slices differ in length from the state.
    pub fn step(&mut self, parameters: &mut [f32], gradients: &[f32]) -> Result<()> {
        let len = self.first_moment.len();
        if parameters.len() != len || gradients.len() != len {
            return Err(Error::shape(
                "optimizer step",
                &[len, len],
                &[parameters.len(), gradients.len()],
            ));
        }
        self.steps += 1;
        match self.optimizer {
            Optimizer::Sgd {
                learning_rate,
                momentum,
            } => {
                for ((parameter, &gradient), velocity) in parameters
                    .iter_mut()
                    .zip(gradients)
                    .zip(&mut self.first_moment)
                {
                    *velocity = momentum * *velocity + gradient;
                    *parameter -= learning_rate * *velocity;
                }
            }
            Optimizer::Adam {
                learning_rate,
                beta1,
                beta2,
                epsilon,
                weight_decay,
            } => {
                let decay = 1.0 - learning_rate * weight_decay;
                let correction1 = 1.0 - beta1.powi(self.steps);
                let correction2_sqrt = (1.0 - beta2.powi(self.steps)).sqrt();
                let step_size = learning_rate / correction1;
                for (((parameter, &gradient), m), v) in parameters
                    .iter_mut()
                    .zip(gradients)
                    .zip(&mut self.first_moment)
                    .zip(&mut self.second_moment)
                {
                    *parameter *= decay;
                    *m = beta1 * *m + (1.0 - beta1) * gradient;
                    *v = beta2 * *v + (1.0 - beta2) * gradient * gradient;
                    let denominator = v.sqrt() / correction2_sqrt + epsilon;
                    *parameter -= step_size * *m / denominator;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn sgd_momentum_accumulates_velocity() {
        let optimizer = Optimizer::Sgd {
            learning_rate: 0.1,
            momentum: 0.9,
        };
        let mut state = OptimizerState::new(optimizer, 1);
        let mut parameter = [1.0f32];
        state.step(&mut parameter, &[1.0]).unwrap();
        assert_relative_eq!(parameter[0], 0.9);
        state.step(&mut parameter, &[1.0]).unwrap();
        // velocity 0.9 * 1 + 1 = 1.9
        assert_relative_eq!(parameter[0], 0.9 - 0.19, epsilon = 1e-6);
    }

    #[test]
    fn adamw_matches_hand_computed_steps() {
        // Two steps by hand for w0 = (1, -2), g = (0.5, 0.1) then (-0.3, 0.2),
        // lr 0.01, betas (0.9, 0.98), eps 1e-8, weight decay 1.0, as torch.optim.AdamW defines.
        let optimizer = Optimizer::Adam {
            learning_rate: 0.01,
            beta1: 0.9,
            beta2: 0.98,
            epsilon: 1e-8,
            weight_decay: 1.0,
        };
        let mut state = OptimizerState::new(optimizer, 2);
        let mut parameters = [1.0f32, -2.0];
        let gradients = [[0.5f64, 0.1], [-0.3, 0.2]];
        let mut expected = [1.0f64, -2.0];
        let (mut m, mut v) = ([0.0f64; 2], [0.0f64; 2]);
        for (step, gradient) in gradients.iter().enumerate() {
            let t = step as i32 + 1;
            for i in 0..2 {
                expected[i] *= 1.0 - 0.01;
                m[i] = 0.9 * m[i] + 0.1 * gradient[i];
                v[i] = 0.98 * v[i] + 0.02 * gradient[i] * gradient[i];
                let m_hat = m[i] / (1.0 - 0.9f64.powi(t));
                let v_hat = v[i] / (1.0 - 0.98f64.powi(t));
                expected[i] -= 0.01 * m_hat / (v_hat.sqrt() + 1e-8);
            }
            let gradient32 = [gradient[0] as f32, gradient[1] as f32];
            state.step(&mut parameters, &gradient32).unwrap();
        }
        // First step: 1 * 0.99 - 0.01 = 0.98; second moves against the new gradient sign.
        assert_relative_eq!(f64::from(parameters[0]), expected[0], epsilon = 1e-6);
        assert_relative_eq!(f64::from(parameters[1]), expected[1], epsilon = 1e-6);
        assert_relative_eq!(
            expected[0],
            0.98 * 0.99
                - 0.01 * ((0.9 * 0.05 - 0.03) / 0.19)
                    / ((0.98 * 0.005 + 0.0018f64) / (1.0 - 0.9604)).sqrt(),
            epsilon = 1e-6
        );
    }

    #[test]
    fn validate_rejects_bad_hyperparameters() {
        assert!(Optimizer::sgd(0.0).validate().is_err());
        assert!(Optimizer::sgd(f32::NAN).validate().is_err());
        assert!(Optimizer::Sgd {
            learning_rate: 0.1,
            momentum: 1.0
        }
        .validate()
        .is_err());
        assert!(Optimizer::adam(1e-3).validate().is_ok());
        let bad_decay = Optimizer::Adam {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: -1.0,
        };
        assert!(bad_decay.validate().is_err());
    }

    #[test]
    fn hyperparameters_serialize_as_written() {
        let json = serde_json::to_value(Optimizer::adam(1e-3)).unwrap();
        assert_eq!(json["learning_rate"], serde_json::json!(0.001));
        assert_eq!(json["beta1"], serde_json::json!(0.9));
        assert_eq!(json["kind"], serde_json::json!("adam"));
    }

    #[test]
    fn step_rejects_length_mismatch() {
        let mut state = OptimizerState::new(Optimizer::adam(1e-3), 3);
        let error = state.step(&mut [0.0; 3], &[0.0; 2]).unwrap_err();
        assert!(matches!(error, Error::ShapeMismatch { .. }));
    }
}
