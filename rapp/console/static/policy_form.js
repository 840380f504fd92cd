// A policy's form, generated from its type's JSON schema (draft 07) for the features policy types use: objects
// with properties (a fieldset each), booleans, enums, numbers and integers, strings, arrays of strings (comma
// separated), and maps of names to numbers (additionalProperties: one "name = value" a line). Empty fields are
// left out. The rApp validates; each problem of its answer is shown next to the field it names.
// `el` and `send` come from common.js.
"use strict";

const form = document.getElementById("policy-form");
const fields = document.getElementById("fields");
const initial = JSON.parse(document.getElementById("policy-data").textContent);
let schema = null;

const idOf = (path) => `field-${path.replaceAll(".", "-")}`;

function errorSpan(path) {
  return el("span", { class: "field-error error", "data-error-for": path });
}

function describe(node) {
  return node.description ? [el("small", { class: "note" }, ` ${node.description}`)] : [];
}

// One input for a leaf of the schema, filled with value.
function leaf(node, path, value, required) {
  const attrs = { id: idOf(path), "data-path": path, name: path };
  if (node.enum) {
    const choices = [...(required ? [] : [""]), ...node.enum];
    const select = el("select", attrs, ...choices.map((c) => el("option", { value: String(c) }, String(c))));
    select.value = value === undefined ? "" : String(value);
    return select;
  }
  if (node.type === "boolean") {
    if (required) {
      const box = el("input", { ...attrs, type: "checkbox" });
      box.checked = value === true;
      return box;
    }
    const select = el("select", attrs, el("option", { value: "" }, ""), el("option", { value: "true" }, "true"),
      el("option", { value: "false" }, "false"));
    select.value = value === undefined ? "" : String(value);
    return select;
  }
  if (node.type === "number" || node.type === "integer") {
    const input = el("input", { ...attrs, type: "text", inputmode: "decimal" });
    input.value = value === undefined ? "" : String(value);
    return input;
  }
  if (node.type === "array") {
    const input = el("input", { ...attrs, type: "text", placeholder: "comma separated" });
    input.value = Array.isArray(value) ? value.join(", ") : "";
    return input;
  }
  if (node.type === "object") {  // a map: additionalProperties only
    const area = el("textarea", { ...attrs, rows: "3", placeholder: "name = value, one a line" });
    area.value = value ? Object.entries(value).map(([k, v]) => `${k} = ${v}`).join("\n") : "";
    return area;
  }
  const input = el("input", { ...attrs, type: "text" });
  input.value = value === undefined ? "" : String(value);
  return input;
}

function render(node, path, value, required) {
  const name = path.split(".").pop();
  if (node.type === "object" && node.properties) {
    const needed = new Set(node.required ?? []);
    const children = Object.entries(node.properties).map(([key, child]) =>
      render(child, path ? `${path}.${key}` : key, value?.[key], needed.has(key)));
    if (!path) return el("div", {}, ...children, errorSpan(""));
    return el("fieldset", { "data-field": path }, el("legend", {}, name), ...describe(node), ...children,
      errorSpan(path));
  }
  return el("div", { class: "field", "data-field": path },
    el("label", { for: idOf(path) }, name + (required ? " *" : "")), leaf(node, path, value, required),
    ...describe(node), errorSpan(path));
}

// The value of the form's part for node at path; undefined when left empty.
function collect(node, path) {
  if (node.type === "object" && node.properties) {
    const result = {};
    for (const [key, child] of Object.entries(node.properties)) {
      const value = collect(child, path ? `${path}.${key}` : key);
      if (value !== undefined) result[key] = value;
    }
    return Object.keys(result).length || !path ? result : undefined;
  }
  const input = document.getElementById(idOf(path));
  if (input.type === "checkbox") return input.checked;
  const text = input.value.trim();
  if (text === "") return undefined;
  if (node.enum) return node.enum.find((c) => String(c) === text) ?? text;
  if (node.type === "boolean") return text === "true";
  if (node.type === "number" || node.type === "integer") {
    const number = Number(text);
    return Number.isNaN(number) ? text : number;  // not a number: sent as it is, for the rApp to name
  }
  if (node.type === "array") return text.split(",").map((part) => part.trim()).filter(Boolean);
  if (node.type === "object") {
    return Object.fromEntries(text.split("\n").filter((line) => line.trim()).map((line) => {
      const [key, ...rest] = line.split("=");
      const raw = rest.join("=").trim();
      return [key.trim(), Number.isNaN(Number(raw)) || raw === "" ? raw : Number(raw)];
    }));
  }
  return text;
}

function showErrors(errors) {
  for (const span of form.querySelectorAll(".field-error")) span.textContent = "";
  document.getElementById("form-error").textContent = "";
  for (const error of errors) {
    // the field named, else its nearest enclosing field on the form, else the form itself
    let path = error.field;
    let span = null;
    while (span === null) {
      span = form.querySelector(`.field-error[data-error-for="${CSS.escape(path)}"]`);
      if (span === null && path === "") span = document.getElementById("form-error");
      path = path.includes(".") ? path.slice(0, path.lastIndexOf(".")) : "";
    }
    span.textContent = span.textContent ? `${span.textContent}; ${error.message}` : error.message;
  }
}

async function loadSchema(type) {
  const answer = await fetch(`${form.dataset.api}/types/${encodeURIComponent(type)}`,
    { headers: { accept: "application/json" } });
  const body = await answer.json();
  if (!answer.ok) {
    fields.replaceChildren();
    showErrors([{ field: "", message: body.detail ?? `policy type ${type}: ${answer.status}` }]);
    return;
  }
  schema = body.policy_schema;
  fields.replaceChildren(render(schema, "", initial ?? {}, true));
  form.dataset.ready = type;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (schema === null) return;
  const id = document.getElementById("policy-id").value.trim();
  if (!id) {
    showErrors([{ field: "policy_id", message: "a policy needs an id" }]);
    return;
  }
  const body = { policytype_id: document.getElementById("policy-type").value, policy_data: collect(schema, "") };
  const [ok, answer] = await send("PUT", `${form.dataset.api}/${encodeURIComponent(id)}`, body);
  if (ok) {
    window.location.assign(form.dataset.listUrl);
    return;
  }
  const errors = answer?.errors ?? (Array.isArray(answer?.detail)
    ? answer.detail.map((e) => ({ field: "", message: `${e.loc.join(".")}: ${e.msg}` }))
    : [{ field: "", message: answer?.detail ?? "refused" }]);
  showErrors(errors.map((e) => (e.message.startsWith("policy_id:") ? { ...e, field: "policy_id" } : e)));
});

document.getElementById("policy-type").addEventListener("change", (event) => loadSchema(event.target.value));
loadSchema(document.getElementById("policy-type").value);
