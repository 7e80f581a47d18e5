//! Skills with steps run as workflows: sequential, parallel, prompt steps and references.

use mock_llm::Reply;
use serde_json::json;

use crate::support::*;

fn last_tool_result(request: &serde_json::Value) -> String {
    request["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string()
}

fn workspace() -> TestWorkspace {
    let ws = TestWorkspace::new();
    ws.python_tool(
        "lookup",
        "  city:\n    type: string\n    required: true",
        "def handle(arguments, context):\n    return {'city': arguments['city'], 'temp': 20, 'next': 'museum'}\n",
    );
    ws.python_tool(
        "suggest",
        "  place:\n    type: string\n  city:\n    type: string",
        "import time\ndef handle(arguments, context):\n    return 'visit ' + arguments['place'] + ' in ' + arguments['city']\n",
    );
    ws.python_tool(
        "explode",
        "  x:\n    type: string",
        "def handle(arguments, context):\n    raise ValueError('no data')\n",
    );
    ws.file(
        "skills/trip/SKILL.md",
        "---\ndescription: Plan a day out\nsteps:\n  - name: weather\n    tool: lookup\n    input:\n      city: $.input.city\n  - name: ideas\n    tools:\n      - tool: suggest\n        input: {place: $.steps.weather.output.next, city: $.input.city}\n      - tool: suggest\n        input: {place: park, city: $.input.city}\n  - name: summary\n    prompt: \"Summarise {{a}} and {{b}} at {{t}} degrees\"\n    system_prompt: Be brief.\n    input:\n      a: $.steps.ideas.output[0]\n      b: $.steps.ideas.output[1]\n      t: $.steps.weather.output.temp\n---\nUse trip to plan days out.\n",
    );
    ws.file(
        "skills/broken/SKILL.md",
        "---\ndescription: Fails midway\nsteps:\n  - name: fine\n    tool: lookup\n    input: {city: x}\n  - name: doomed\n    tool: explode\n    input: {x: $.steps.fine.output.city}\n---\n",
    );
    ws.agent("planner", "skills: [trip, broken]", "Plan days.");
    ws
}

#[tokio::test]
async fn a_skill_workflow_runs_as_one_tool() {
    let ws = workspace();
    let (mock, server) = start(&ws).await;
    let (_, skill) = server.get("/v1/skills/trip").await;
    assert_eq!(skill["has_workflow"], true);
    assert_eq!(skill["step_count"], 3);
    let kinds: Vec<&str> = skill["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["tool", "parallel", "prompt"]);
    assert_eq!(skill["steps"][1]["tools"], json!(["suggest", "suggest"]));

    mock.push(Reply::tool_call("trip", json!({"city": "Oslo"})));
    mock.push(Reply::text("Museum in the morning, park after."));
    mock.push(Reply::text("Here is your day: museum, then park."));
    let (status, body) = server
        .post("/v1/agents/planner/invoke", json!({"message": "Plan Oslo"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"]["raw_text"],
        "Here is your day: museum, then park."
    );

    let requests = mock.requests();
    let offered = &requests[0].body["tools"];
    let trip = offered
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "trip")
        .unwrap();
    assert_eq!(trip["function"]["parameters"]["required"], json!(["city"]));
    // The prompt step's call: references resolved, the step's own system prompt.
    let prompt_call = &requests[1].body["messages"];
    assert_eq!(
        prompt_call[0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(
        prompt_call[1]["content"],
        "Summarise visit museum in Oslo and visit park in Oslo at 20 degrees"
    );
    assert_eq!(
        last_tool_result(&requests[2].body),
        "Museum in the morning, park after."
    );
}

#[tokio::test]
async fn a_failing_step_is_named() {
    let ws = workspace();
    let (mock, server) = start(&ws).await;
    mock.push(Reply::tool_call("broken", json!({})));
    mock.push(Reply::text("It failed."));
    server
        .post("/v1/agents/planner/invoke", json!({"message": "go"}))
        .await;
    let answer = last_tool_result(&mock.requests()[1].body);
    assert!(
        answer.contains("workflow 'broken': step 'doomed' failed"),
        "{answer}"
    );
    assert!(answer.contains("ValueError: no data"), "{answer}");
}
