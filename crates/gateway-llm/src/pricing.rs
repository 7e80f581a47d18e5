//! Public list prices, to estimate the cost of a call.

use crate::TokenUsage;

/// (model name prefix, USD per million input tokens, USD per million output tokens).
/// Longest matching prefix wins, so `gpt-4o-mini` is not priced as `gpt-4o`.
const PRICES: &[(&str, f64, f64)] = &[
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4-turbo", 10.00, 30.00),
    ("gpt-3.5-turbo", 0.50, 1.50),
    ("o1-mini", 1.10, 4.40),
    ("o1", 15.00, 60.00),
    ("o3-mini", 1.10, 4.40),
    ("o3", 2.00, 8.00),
    ("o4-mini", 1.10, 4.40),
    ("claude-3-5-haiku", 0.80, 4.00),
    ("claude-3-haiku", 0.25, 1.25),
    ("claude-3-5-sonnet", 3.00, 15.00),
    ("claude-3-7-sonnet", 3.00, 15.00),
    ("claude-sonnet-4", 3.00, 15.00),
    ("claude-3-opus", 15.00, 75.00),
    ("claude-opus-4", 15.00, 75.00),
    ("claude-haiku-4", 1.00, 5.00),
    ("gemini-2.5-pro", 1.25, 10.00),
    ("gemini-2.5-flash-lite", 0.10, 0.40),
    ("gemini-2.5-flash", 0.30, 2.50),
    ("gemini-2.0-flash-lite", 0.075, 0.30),
    ("gemini-2.0-flash", 0.10, 0.40),
    ("gemini-1.5-pro", 1.25, 5.00),
    ("gemini-1.5-flash", 0.075, 0.30),
];

/// Estimated cost in USD of `usage` on `model` (`provider/model` or bare); 0 when unknown.
pub fn cost_usd(model: &str, usage: &TokenUsage) -> f64 {
    let name = model.rsplit_once('/').map_or(model, |(_, m)| m);
    PRICES
        .iter()
        .filter(|(prefix, _, _)| name.starts_with(prefix))
        .max_by_key(|(prefix, _, _)| prefix.len())
        .map(|(_, input, output)| {
            (usage.input_tokens as f64 * input + usage.output_tokens as f64 * output) / 1_000_000.0
        })
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let usage = TokenUsage {
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
        };
        assert!((cost_usd("openai/gpt-4o-mini", &usage) - 0.75).abs() < 1e-9);
        assert!((cost_usd("gpt-4o-2024-08-06", &usage) - 12.5).abs() < 1e-9);
        assert_eq!(cost_usd("ollama/llama3.2", &usage), 0.0);
    }
}
