// The policies page: every policy with its Near-RT status (from the console's JSON, polled), edit links and
// deletes.
// `el`, `utc` and `send` come from common.js.
"use strict";

const table = document.getElementById("policies");

function scopeText(data) {
  const scope = data.scope ?? {};
  const parts = [...(scope.nodes ?? []).map((n) => `node ${n}`), ...(scope.cells ?? []).map((c) => `cell ${c}`)];
  return parts.length ? parts.join(", ") : "every cell";
}

function statusText(near) {
  return near.enforceStatus + (near.enforceReason ? ` (${near.enforceReason})` : "");
}

function row(policy) {
  const data = policy.policy_data;
  const actions = [];
  if (table.dataset.canAct) {
    const edit = `${table.dataset.editUrl}?id=${encodeURIComponent(policy.policy_id)}`;
    const remove = el("button", { type: "button", class: "delete" }, "Delete");
    remove.addEventListener("click", async () => {
      const [ok, answer] = await send("DELETE", `${table.dataset.url}/${encodeURIComponent(policy.policy_id)}`);
      document.getElementById("policies-error").textContent = ok ? "" : answer?.detail ?? "refused";
      if (ok) await async function poll() {
  try {
    await load();
  } finally {
    setTimeout(poll, Number(table.dataset.refreshMs));
  }
}

poll();
    });
    actions.push(el("a", { href: edit, class: "edit" }, "Edit"), " ", remove);
  }
  return el("tr", { "data-policy": policy.policy_id },
    el("td", {}, policy.policy_id), el("td", {}, policy.policytype_id),
    el("td", {}, "enabled" in data ? String(data.enabled) : ""), el("td", {}, scopeText(data)),
    el("td", {}, policy.expires_ms ? utc(policy.expires_ms) : ""), el("td", {}, policy.last_modified),
    el("td", { class: "near-rt-status" }, statusText(policy.near_rt_status)), el("td", {}, ...actions));
}

async function load() {
  const status = document.getElementById("policies-status");
  const answer = await fetch(table.dataset.url, { headers: { accept: "application/json" } });
  if (!answer.ok) {
    status.textContent = `The policies could not be read (${answer.status}).`;
    return;
  }
  const policies = (await answer.json()).policies;
  document.querySelector("#policies tbody").replaceChildren(...policies.map(row));
  status.textContent = policies.length ? `${policies.length} policies` : "No policy.";
}

async function poll() {
  try {
    await load();
  } finally {
    setTimeout(poll, Number(table.dataset.refreshMs));
  }
}

poll();
