// Client acceptance against `loom serve`: the official `openai` npm client and LangChain.js, one case per run.
// Usage: LOOM_BASE_URL=http://127.0.0.1:PORT/v1 LOOM_API_KEY=KEY LOOM_MODEL=NAME LOOM_EMBEDDING_MODEL=NAME node acceptance.mjs CASE
// Prints one line of JSON (what the case saw) and exits 0; a failed check throws, printing why, and exits 1.
import assert from "node:assert/strict";
import OpenAI from "openai";
import { ChatOpenAI } from "@langchain/openai";
import { tool } from "@langchain/core/tools";
import { HumanMessage, ToolMessage } from "@langchain/core/messages";
import { z } from "zod";

const baseURL = process.env.LOOM_BASE_URL;
const apiKey = process.env.LOOM_API_KEY ?? "none";
const model = process.env.LOOM_MODEL;
const embeddingModel = process.env.LOOM_EMBEDDING_MODEL;
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const chatModel = () => new ChatOpenAI({ model, apiKey, temperature: 0, maxTokens: 160, maxRetries: 0, configuration: { baseURL } });

const weatherParameters = {
  type: "object",
  properties: { city: { type: "string", maxLength: 20 } },
  required: ["city"],
  additionalProperties: false,
};
const weatherTool = { type: "function", function: { name: "get_weather", description: "The weather in a city", parameters: weatherParameters, strict: true } };

const cases = {
  async chat() {
    const completion = await client.chat.completions.create({ model, messages: [{ role: "user", content: "hello there" }], max_tokens: 8, temperature: 0 });
    const choice = completion.choices[0];
    assert.equal(choice.message.role, "assistant");
    assert.equal(typeof choice.message.content, "string");
    assert.ok(["stop", "length"].includes(choice.finish_reason));
    assert.ok(completion.usage.completion_tokens >= 1);
    return { content: choice.message.content };
  },

  async stream() {
    const whole = await client.chat.completions.create({ model, messages: [{ role: "user", content: "tell me about the fox" }], max_tokens: 12, temperature: 0 });
    const stream = await client.chat.completions.create({
      model, messages: [{ role: "user", content: "tell me about the fox" }], max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true },
    });
    let text = "", finish = null, usage = null, chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices) {
        text += choice.delta?.content ?? "";
        finish ??= choice.finish_reason;
      }
    }
    assert.equal(text, whole.choices[0].message.content);
    assert.ok(finish);
    assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
    return { text, chunks };
  },

  async json_schema() {
    const schema = {
      type: "object",
      properties: { name: { type: "string", maxLength: 12 }, age: { type: "integer", minimum: 0, maximum: 120 } },
      required: ["name", "age"],
      additionalProperties: false,
    };
    const completion = await client.chat.completions.create({
      model, messages: [{ role: "user", content: "who are you?" }], max_tokens: 64, temperature: 0,
      response_format: { type: "json_schema", json_schema: { name: "person", schema, strict: true } },
    });
    const answer = JSON.parse(completion.choices[0].message.content);
    assert.equal(typeof answer.name, "string");
    assert.ok(Number.isInteger(answer.age) && answer.age >= 0 && answer.age <= 120);
    assert.deepEqual(Object.keys(answer).sort(), ["age", "name"]);
    return answer;
  },

  async tools() {
    const messages = [{ role: "user", content: "what is the weather in Paris?" }];
    const first = await client.chat.completions.create({ model, messages, tools: [weatherTool], tool_choice: "required", max_tokens: 160, temperature: 0 });
    const choice = first.choices[0];
    assert.equal(choice.finish_reason, "tool_calls");
    assert.equal(choice.message.content, null);
    const call = choice.message.tool_calls[0];
    assert.match(call.id, /^call_/);
    assert.equal(call.type, "function");
    assert.equal(call.function.name, "get_weather");
    assert.equal(typeof JSON.parse(call.function.arguments).city, "string");
    messages.push(choice.message, { role: "tool", tool_call_id: call.id, content: JSON.stringify({ celsius: 21 }) });
    const second = await client.chat.completions.create({ model, messages, tools: [weatherTool], tool_choice: "none", max_tokens: 8, temperature: 0 });
    assert.equal(typeof second.choices[0].message.content, "string");
    assert.equal(second.choices[0].message.tool_calls ?? undefined, undefined);
    return { call: call.function, answer: second.choices[0].message.content };
  },

  async logprobs() {
    const completion = await client.chat.completions.create({
      model, messages: [{ role: "user", content: "hello there" }], max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 2,
    });
    const content = completion.choices[0].logprobs.content;
    assert.equal(content.length, completion.usage.completion_tokens);
    for (const token of content) {
      assert.equal(token.top_logprobs.length, 2);
      assert.ok(token.logprob <= 0);
      assert.equal(token.logprob, token.top_logprobs[0].logprob);
      assert.ok(Array.isArray(token.bytes));
    }
    return { tokens: content.length };
  },

  async embeddings() {
    // the client asks for base64 by default and decodes it itself
    const input = ["the quick brown fox", "hello world"];
    const viaBase64 = await client.embeddings.create({ model: embeddingModel, input });
    const viaFloat = await client.embeddings.create({ model: embeddingModel, input, encoding_format: "float" });
    for (let i = 0; i < input.length; i++) {
      const a = viaBase64.data[i].embedding, b = viaFloat.data[i].embedding;
      assert.equal(a.length, b.length);
      assert.ok(a.some((v) => v !== 0), "base64 embedding decoded to zeros");
      for (let j = 0; j < a.length; j++) assert.ok(Math.abs(a[j] - b[j]) <= 1e-6 * Math.max(1, Math.abs(b[j])), `component ${j}: ${a[j]} vs ${b[j]}`);
    }
    const short = await client.embeddings.create({ model: embeddingModel, input: "the quick brown fox", dimensions: 8, encoding_format: "float" });
    assert.equal(short.data[0].embedding.length, 8);
    return { dimensions: viaFloat.data[0].embedding.length };
  },

  async langchain_structured() {
    const Person = z.object({ name: z.string().max(12), age: z.number().int().min(0).max(120) });
    const structured = chatModel().withStructuredOutput(Person, { name: "person" });
    const person = await structured.invoke("who are you?");
    assert.equal(typeof person.name, "string");
    assert.ok(Number.isInteger(person.age));
    return person;
  },

  async langchain_tools() {
    const getWeather = tool(async ({ city }) => JSON.stringify({ city, celsius: 21 }), {
      name: "get_weather", description: "The weather in a city", schema: z.object({ city: z.string().max(20) }),
    });
    const bound = chatModel().bindTools([getWeather], { tool_choice: "get_weather" });
    const question = new HumanMessage("what is the weather in Paris?");
    const first = await bound.invoke([question]);
    assert.equal(first.tool_calls.length, 1);
    const call = first.tool_calls[0];
    assert.equal(call.name, "get_weather");
    assert.equal(typeof call.args.city, "string");
    const result = await getWeather.invoke(call.args);
    const second = await chatModel().bindTools([getWeather], { tool_choice: "none" }).invoke([question, first, new ToolMessage({ content: result, tool_call_id: call.id })]);
    assert.equal(typeof second.content, "string");
    return { call: { name: call.name, args: call.args } };
  },
};

const name = process.argv[2];
if (!cases[name]) {
  console.error(`unknown case '${name}' (${Object.keys(cases).join(", ")})`);
  process.exit(2);
}
try {
  console.log(JSON.stringify(await cases[name]()));
} catch (error) {
  console.error(`${name}: ${error.stack ?? error}`);
  process.exit(1);
}
