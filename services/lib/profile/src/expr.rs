//! [`Expr`]: a derived feature's formula over the profile's sensors, parsed once when the
//! profile is read and evaluated per reading in f64.

use crate::ProfileErrorKind;
use exmex::prelude::*;

/// Names an expression may use besides the sensors; no sensor may take them.
pub const RESERVED: [&str; 3] = ["pi", "tau", "e"];

/// A formula such as `torque_nm * spindle_rpm * 2 * pi / 60`: `+ - * / ^`, parentheses, the
/// functions exmex knows (`sqrt`, `abs`, `exp`, `log`, `sin`, ...), numbers, the constants `pi`,
/// `tau` and `e`, and the profile's sensors.
#[derive(Debug, Clone)]
pub struct Expr {
    text: String,
    flat: FlatEx<f64>,
    /// For each of the expression's variables (exmex orders them alphabetically): where its
    /// value comes from.
    inputs: Vec<Input>,
}

#[derive(Debug, Clone, Copy)]
enum Input {
    Sensor(usize),
    Constant(f64),
}

impl Expr {
    /// Parses `text` over `sensors` (their order is the order of the values
    /// [`Expr::eval`] gets).
    ///
    /// # Errors
    /// [`ProfileErrorKind::BadExpression`] when it does not parse,
    /// [`ProfileErrorKind::UnknownVariable`] when it names something that is not a sensor.
    pub fn parse(text: &str, sensors: &[&str]) -> Result<Self, ProfileErrorKind> {
        let flat = FlatEx::<f64>::parse(text)
            .map_err(|e| ProfileErrorKind::BadExpression(first_line(&e.to_string())))?;
        let inputs = flat
            .var_names()
            .iter()
            .map(|v| match v.as_str() {
                "pi" => Ok(Input::Constant(std::f64::consts::PI)),
                "tau" => Ok(Input::Constant(std::f64::consts::TAU)),
                "e" => Ok(Input::Constant(std::f64::consts::E)),
                name => sensors
                    .iter()
                    .position(|s| *s == name)
                    .map(Input::Sensor)
                    .ok_or_else(|| ProfileErrorKind::UnknownVariable(name.to_owned())),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            text: text.to_owned(),
            flat,
            inputs,
        })
    }

    /// The formula as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The value for these sensor values (in the profile's sensor order); NaN when a sensor
    /// it uses is NaN (missing) or the arithmetic has no value.
    pub fn eval(&self, sensors: &[f64]) -> f64 {
        let mut vars = [0.0; 16];
        let vars = if self.inputs.len() <= vars.len() {
            &mut vars[..self.inputs.len()]
        } else {
            return self.eval_slow(sensors);
        };
        for (slot, input) in vars.iter_mut().zip(&self.inputs) {
            *slot = value(*input, sensors);
        }
        self.flat.eval(vars).unwrap_or(f64::NAN)
    }

    fn eval_slow(&self, sensors: &[f64]) -> f64 {
        let vars: Vec<f64> = self.inputs.iter().map(|i| value(*i, sensors)).collect();
        self.flat.eval(&vars).unwrap_or(f64::NAN)
    }
}

fn value(input: Input, sensors: &[f64]) -> f64 {
    match input {
        Input::Sensor(i) => sensors.get(i).copied().unwrap_or(f64::NAN),
        Input::Constant(c) => c,
    }
}

/// exmex's messages can run on with operator internals; the first clause says what is wrong.
fn first_line(msg: &str) -> String {
    msg.split([',', '\n'])
        .next()
        .unwrap_or(msg)
        .trim()
        .to_owned()
}
