//! The LLM judge: a model grades the agent's answer against a rubric, answering only
//! `{"score": <0..1>, "reason": "..."}`; the assertion passes when the score reaches the
//! threshold. A grade that cannot be read fails, quoting the judge's raw text.

use gateway_llm::{CompletionRequest, LlmClient, Message, ModelTarget};
use gateway_workspace::test_cases::{CaseInput, Judge, TestCase};
use serde_json::{Value, json};

use crate::report::{Assertion, Transcript, one_line};

const SYSTEM_PROMPT: &str = "You grade the answer of an AI agent against a rubric. \
Read the rubric, the input the agent was given and the agent's answer, and decide how well \
the answer meets the rubric, from 0 (not at all) to 1 (fully). Reply with only a JSON object \
and nothing else: {\"score\": <a number from 0 to 1>, \"reason\": \"<one short sentence>\"}";

/// A judge's grade.
#[derive(Debug, Clone, PartialEq)]
pub struct Grade {
    pub score: f64,
    pub reason: String,
}

/// The messages that ask a judge model for a grade of the case's answer.
pub fn messages(judge: &Judge, case: &TestCase, transcript: &Transcript) -> Vec<Message> {
    vec![
        Message::system(SYSTEM_PROMPT),
        Message::user(prompt(judge, case, transcript)),
    ]
}

/// A request with [`messages`], at temperature 0, asking for a grade's shape.
pub fn request(judge: &Judge, case: &TestCase, transcript: &Transcript) -> CompletionRequest {
    CompletionRequest {
        messages: messages(judge, case, transcript),
        temperature: Some(0.0),
        output_schema: Some(grade_schema()),
        ..CompletionRequest::default()
    }
}

/// Asks `model` through `llm` for a grade.
pub async fn ask(
    llm: &LlmClient,
    model: &str,
    judge: &Judge,
    case: &TestCase,
    transcript: &Transcript,
) -> Assertion {
    let answer = llm
        .complete(&ModelTarget::new(model), &request(judge, case, transcript))
        .await
        .map(|completion| completion.text)
        .map_err(|err| err.to_string());
    assess(judge, model, answer)
}

/// The assertion for a judge's answer (or the reason it could not be asked).
pub fn assess(judge: &Judge, model: &str, answer: Result<String, String>) -> Assertion {
    let expected = format!(
        "score >= {} from {model} for rubric {:?}",
        judge.threshold, judge.rubric
    );
    let text = match answer {
        Ok(text) => text,
        Err(err) => {
            return Assertion::new(
                "judge",
                false,
                expected,
                format!("the judge could not be asked: {err}"),
            );
        }
    };
    match parse_grade(&text) {
        Some(grade) => Assertion::new(
            "judge",
            grade.score >= judge.threshold,
            expected,
            format!("score {}: {}", grade.score, grade.reason),
        ),
        None => Assertion::new(
            "judge",
            false,
            expected,
            format!(
                "unreadable grade (expected {{\"score\": 0..1, \"reason\": ...}}): {:?}",
                one_line(&text, 600)
            ),
        ),
    }
}

/// The schema of a grade (the scripted models answer an instance of it; hosted ones are
/// told it).
fn grade_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "reason": {"type": "string"}
        },
        "required": ["score", "reason"]
    })
}

/// The grader's user message: the rubric, what the agent was given, and what it answered.
fn prompt(judge: &Judge, case: &TestCase, transcript: &Transcript) -> String {
    let mut text = format!("Rubric:\n{}\n\n", judge.rubric);
    if !case.fields.is_empty() {
        text.push_str(&format!(
            "Input fields given to the agent:\n{}\n\n",
            Value::Object(case.fields.clone())
        ));
    }
    match &case.input {
        CaseInput::Message(message) => {
            text.push_str(&format!("The user's message:\n{message}\n\n"));
            let answer = transcript.last().map(|t| t.answer.as_str()).unwrap_or("");
            text.push_str(&format!("The agent's answer:\n{answer}\n"));
        }
        CaseInput::Conversation(_) => {
            text.push_str("The conversation (grade the agent's answers):\n");
            for turn in &transcript.turns {
                text.push_str(&format!("User: {}\nAgent: {}\n", turn.message, turn.answer));
            }
        }
    }
    text
}

/// Reads `{"score": .., "reason": ..}` from a judge's answer: the whole text, or the first
/// JSON object in it (models wrap answers in code fences or prose). The score must be a
/// number (or numeric text) within 0..=1.
pub fn parse_grade(text: &str) -> Option<Grade> {
    let trimmed = text.trim();
    let value = serde_json::from_str::<Value>(trimmed).ok().or_else(|| {
        let start = trimmed.find('{')?;
        let end = trimmed.rfind('}')?;
        (start < end)
            .then(|| serde_json::from_str::<Value>(&trimmed[start..=end]).ok())
            .flatten()
    })?;
    let score = match value.get("score")? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if !(0.0..=1.0).contains(&score) {
        return None;
    }
    let reason = match value.get("reason") {
        Some(Value::String(reason)) => reason.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    Some(Grade { score, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_grades() {
        assert_eq!(
            parse_grade(r#"{"score": 0.9, "reason": "good"}"#),
            Some(Grade {
                score: 0.9,
                reason: "good".into()
            })
        );
        let fenced = "Here you go:\n```json\n{\"score\": \"1\", \"reason\": \"ok\"}\n```";
        assert_eq!(parse_grade(fenced).unwrap().score, 1.0);
        assert_eq!(parse_grade(r#"{"score": 0}"#).unwrap().reason, "");
        for bad in [
            "",
            "great answer",
            r#"{"score": 1.5}"#,
            r#"{"score": "high"}"#,
            r#"{"reason": "no score"}"#,
            "[0.9]",
        ] {
            assert_eq!(parse_grade(bad), None, "{bad:?}");
        }
    }
}
