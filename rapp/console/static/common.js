// What several console pages share: building DOM nodes (no HTML strings, so every name stays text), UTC times,
// and sending a change with the session's CSRF token.
"use strict";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

const utc = (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC";

// A change (POST, PUT, DELETE) with a JSON body; resolves to [ok, the answer's JSON or null].
async function send(method, url, body) {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
  const answer = await fetch(url, {
    method,
    headers: { "content-type": "application/json", accept: "application/json", "x-csrf-token": csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await answer.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = { detail: text || answer.statusText }; }
  return [answer.ok, parsed];
}
