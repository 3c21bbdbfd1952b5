""":class:`APO`: automatic prompt optimization with textual gradients, beam or Pareto search.

Each round samples parents, runs each on a training minibatch through the store, asks the
optimizer model for a revised prompt from the recorded conversations and rewards, gates the
candidate on the parent's minibatch, scores survivors on validation examples and keeps the
best. Every rollout carries a deterministic key in its metadata, so a run restarted on the
same durable store reuses every finished evaluation (and every published proposal), and
the round of its candidate (metadata ``step``, the dashboard's reward curve).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from agentlightning_apo.history import Candidate, RunStats, write_history, write_plot
from agentlightning_apo.proposer import (
    EditMode,
    Example,
    MetaPrompts,
    OptimizerLLM,
    extract_prompt,
    format_examples,
    placeholder_fields,
)
from agentlightning_core import (
    LLM,
    Algorithm,
    BadTraceError,
    EnqueueRequest,
    LightningStore,
    NotFoundError,
    PromptTemplate,
    TraceToMessages,
)
from agentlightning_core.emitter import find_final_reward
from agentlightning_core.types import RolloutMode

__all__ = ["APO", "Selection"]

logger = logging.getLogger(__name__)

Selection = Literal["beam", "pareto"]

_TERMINAL = ("succeeded", "failed", "cancelled")


class _Stop(Exception):
    """A budget ran out (or a stop was requested): finish with what has been measured."""


class APO(Algorithm):
    """Automatic prompt optimization of the ``PromptTemplate`` in the initial resources.

    :param client: an ``openai.AsyncOpenAI``-compatible client for the optimizer's calls;
        None builds one from the LLM resource named ``llm_resource``.
    :param gradient_model: model of the critique (or rewrite) call; None: the LLM resource's model.
    :param apply_edit_model: model of the edit call; None: ``gradient_model``.
    :param beam_width: prompts kept per round (beam) or parents drawn per round (Pareto).
    :param branch_factor: proposals per parent per round.
    :param beam_rounds: rounds of proposals.
    :param gradient_batch_size: training tasks each proposal's parent runs on (its minibatch).
    :param val_batch_size: validation tasks candidates are compared on per round (beam).
    :param diversity_temperature: sampling temperature of the optimizer's calls.
    :param rollout_batch_timeout: seconds to wait for a batch of rollouts; unfinished ones score 0.
    :param run_initial_validation: score the seed prompt on the whole validation set first.
    :param gradient_prompts: file replacing the critique meta-prompt.
    :param edit_prompts: file replacing the edit meta-prompt.
    :param rewrite_prompts: file replacing the rewrite meta-prompt.
    :param edit_mode: ``"rewrite"`` (one call that sees the transcripts and writes the new
        prompt; measured to work with 1.5B models) or ``"critique_then_edit"`` (two calls).
    :param selection: ``"beam"`` (top ``beam_width`` on the round's validation batch) or
        ``"pareto"`` (parents drawn from the Pareto front over validation examples).
    :param minibatch_gate: a candidate must beat its parent on the parent's minibatch before
        it is scored on validation.
    :param max_rollouts: most rollouts the run spends (exact: batches are cut to fit).
    :param max_llm_tokens: most optimizer tokens (critique and edit calls, as the endpoint reports).
    :param max_wall_seconds: no new batch or call starts after this many seconds.
    :param samples_per_task: rollouts per task and prompt (their mean is the task's score).
    :param max_critique_conversations: most conversations shown per optimizer call.
    :param max_critique_tokens: about this many tokens of conversations per optimizer call.
    :param max_edit_tokens: most tokens the optimizer may answer per call.
    :param llm_resource: name of the LLM resource the default client talks to.
    :param prompt_resource: name of the PromptTemplate to optimize (None: the only one).
    :param output_dir: where ``best_prompt.txt``, ``history.json`` and ``progress.png`` go (None: nowhere).
    :param run_name: prefix of rollout keys and resource ids; a restarted run with the same
        name on the same store resumes.
    :param seed: seed of every random choice (minibatches, parents, optimizer call seeds).
    :param progress: a live progress line on stderr; None: when stderr is a terminal.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        gradient_model: str | None = None,
        apply_edit_model: str | None = None,
        beam_width: int = 4,
        branch_factor: int = 4,
        beam_rounds: int = 3,
        gradient_batch_size: int = 4,
        val_batch_size: int = 16,
        diversity_temperature: float = 1.0,
        rollout_batch_timeout: float = 3600.0,
        run_initial_validation: bool = True,
        gradient_prompts: str | Path | None = None,
        edit_prompts: str | Path | None = None,
        rewrite_prompts: str | Path | None = None,
        edit_mode: EditMode = "rewrite",
        selection: Selection = "beam",
        minibatch_gate: bool = True,
        max_rollouts: int | None = None,
        max_llm_tokens: int | None = None,
        max_wall_seconds: float | None = None,
        samples_per_task: int = 1,
        max_critique_conversations: int = 4,
        max_critique_tokens: int = 2000,
        max_edit_tokens: int = 600,
        llm_resource: str = "llm",
        prompt_resource: str | None = None,
        output_dir: str | Path | None = None,
        run_name: str = "apo",
        seed: int = 0,
        progress: bool | None = None,
    ) -> None:
        for name, value in (
            ("beam_width", beam_width),
            ("branch_factor", branch_factor),
            ("beam_rounds", beam_rounds),
            ("gradient_batch_size", gradient_batch_size),
            ("val_batch_size", val_batch_size),
            ("samples_per_task", samples_per_task),
            ("max_critique_conversations", max_critique_conversations),
            ("max_critique_tokens", max_critique_tokens),
            ("max_edit_tokens", max_edit_tokens),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"APO {name} must be a positive integer, got {value!r}")
        for name, limit in (("max_rollouts", max_rollouts), ("max_llm_tokens", max_llm_tokens)):
            if limit is not None and (not isinstance(limit, int) or limit < 1):
                raise ValueError(f"APO {name} must be a positive integer or None, got {limit!r}")
        if max_wall_seconds is not None and max_wall_seconds <= 0:
            raise ValueError(f"APO max_wall_seconds must be positive or None, got {max_wall_seconds!r}")
        if edit_mode not in ("rewrite", "critique_then_edit"):
            raise ValueError(f"APO edit_mode must be 'rewrite' or 'critique_then_edit', got {edit_mode!r}")
        if selection not in ("beam", "pareto"):
            raise ValueError(f"APO selection must be 'beam' or 'pareto', got {selection!r}")
        if rollout_batch_timeout <= 0:
            raise ValueError(f"APO rollout_batch_timeout must be positive, got {rollout_batch_timeout!r}")
        self.client = client
        self.gradient_model = gradient_model
        self.apply_edit_model = apply_edit_model
        self.beam_width = beam_width
        self.branch_factor = branch_factor
        self.beam_rounds = beam_rounds
        self.gradient_batch_size = gradient_batch_size
        self.val_batch_size = val_batch_size
        self.diversity_temperature = diversity_temperature
        self.rollout_batch_timeout = rollout_batch_timeout
        self.run_initial_validation = run_initial_validation
        self.prompts = MetaPrompts.load(gradient_prompts, edit_prompts, rewrite_prompts)
        self.edit_mode: EditMode = edit_mode
        self.selection: Selection = selection
        self.minibatch_gate = minibatch_gate
        self.max_rollouts = max_rollouts
        self.max_llm_tokens = max_llm_tokens
        self.max_wall_seconds = max_wall_seconds
        self.samples_per_task = samples_per_task
        self.max_critique_conversations = max_critique_conversations
        self.max_critique_tokens = max_critique_tokens
        self.max_edit_tokens = max_edit_tokens
        self.llm_resource = llm_resource
        self.prompt_resource = prompt_resource
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.run_name = run_name
        self.seed = seed
        self.progress = progress
        self.candidates: list[Candidate] = []
        self.rounds: list[dict[str, Any]] = []
        self.stats = RunStats()
        self.best: Candidate | None = None
        self._best_published: str | None = None

    # --- results ------------------------------------------------------------------------

    def get_best_prompt(self) -> PromptTemplate:
        """The best prompt found (by mean score on the whole validation set)."""
        if self.best is None:
            raise RuntimeError("APO has no best prompt yet: run it with trainer.fit(agent, train, val) first")
        return PromptTemplate(self.best.prompt)

    @property
    def history_path(self) -> Path | None:
        return None if self.output_dir is None else self.output_dir / "history.json"

    @property
    def plot_path(self) -> Path | None:
        return None if self.output_dir is None else self.output_dir / "progress.png"

    @property
    def best_prompt_path(self) -> Path | None:
        return None if self.output_dir is None else self.output_dir / "best_prompt.txt"

    # --- the run --------------------------------------------------------------------------

    async def run(
        self, train_dataset: Sequence[Any] | None = None, val_dataset: Sequence[Any] | None = None
    ) -> None:
        if not train_dataset or not val_dataset:
            missing = [
                n for n, d in (("train_dataset", train_dataset), ("val_dataset", val_dataset)) if not d
            ]
            raise ValueError(
                f"APO needs a non-empty train_dataset (for critiques) and val_dataset (to compare prompts); "
                f"missing or empty: {', '.join(missing)}. Call trainer.fit(agent, train_dataset, val_dataset)."
            )
        self._train, self._val = list(train_dataset), list(val_dataset)
        store = self.get_store()
        self._prompt_name, seed_template, self._base_resources = self._seed_resources()
        self._fields = sorted(placeholder_fields(seed_template.template) or [])
        self._messages = self._conversation_adapter()
        self._llm = OptimizerLLM(self._make_client())
        self._rng = random.Random(self.seed)
        self._started, self._round = time.monotonic(), 0
        self.candidates, self.rounds, self.stats, self.best = [], [], RunStats(), None
        self._show = sys.stderr.isatty() if self.progress is None else self.progress
        self._known = await self._previous_rollouts(store)
        self._warn_if_budget_small()
        try:
            await self._search(store, seed_template.template)
        except _Stop as stop:
            self.stats.stopped_by = str(stop)
            logger.warning("APO stopped early: %s", stop)
        finally:
            self.stats.llm_calls, self.stats.llm_tokens = self._llm.calls, self._llm.tokens
            self.stats.rate_limit_retries = self._llm.rate_limit_retries
            if self._show:
                sys.stderr.write("\n")
            if self._llm.client is not self.client:  # the client APO made for itself
                await self._llm.client.close()
            await self._finish(store)

    async def _search(self, store: LightningStore, seed_prompt: str) -> None:
        seed = self._add_candidate(Candidate(id="seed", prompt=seed_prompt, round=0, status="evaluated"))
        await self._publish(store, seed)
        all_val = list(range(len(self._val)))
        if self.run_initial_validation or self.selection == "pareto":
            await self._score(store, seed, all_val)
            self._update_best()
        beam = [seed]
        self._record_round(0, beam)
        for round_no in range(1, self.beam_rounds + 1):
            self._check_stop()
            self._round = round_no
            val_batch = sorted(self._rng.sample(all_val, min(self.val_batch_size, len(all_val))))
            parents = self._parents(beam)
            accepted: list[Candidate] = []
            for p, parent in enumerate(parents):
                for b in range(self.branch_factor):
                    cand = await self._propose(store, parent, f"r{round_no}.{p}.{b}", round_no)
                    if cand is not None:
                        accepted.append(cand)
            if self.selection == "beam":
                pool = beam + accepted
                for cand in pool:
                    await self._score(store, cand, val_batch)
                pool.sort(key=lambda c: -(c.mean_on(val_batch) or 0.0))
                beam = pool[: self.beam_width]
                for cand in beam:  # the best is tracked on the whole validation set
                    await self._score(store, cand, all_val)
            else:
                for cand in accepted:
                    await self._score(store, cand, all_val)
                beam = self._pareto_front()
            self._update_best()
            await self._publish_best(store)
            self._record_round(round_no, beam)
            self._checkpoint()

    # --- proposals --------------------------------------------------------------------------

    async def _propose(
        self, store: LightningStore, parent: Candidate, cid: str, round_no: int
    ) -> Candidate | None:
        self._check_stop()
        minibatch = sorted(
            self._rng.sample(range(len(self._train)), min(self.gradient_batch_size, len(self._train)))
        )
        call_seed = self._rng.randrange(2**31)
        parent_rewards, examples = await self._run_batch(
            store, parent, "train", minibatch, want_examples=True
        )
        if parent_rewards and min(min(r) for r in parent_rewards.values()) >= 1.0:
            self.stats.perfect_minibatches += 1
            logger.info(
                "APO: %s scored 1 on every task of its minibatch: nothing to learn, no call", parent.id
            )
            return None
        self.stats.proposals += 1
        cand = Candidate(id=cid, prompt="", round=round_no, parent=parent.id)
        published = await self._published_prompt(store, cid)
        if published is not None:
            cand.prompt = published  # resumed: the proposal was made and published before
            cand.critique = self._previous_critiques.get(cid)
        else:
            text = await self._ask_optimizer(parent, examples, cand, call_seed)
            if text is None:
                return None
            cand.prompt = text
        if any(c.prompt == cand.prompt for c in self.candidates):
            self.stats.duplicates += 1
            logger.info("APO: %s repeats an earlier candidate; skipped", cid)
            return None
        self._add_candidate(cand)
        if sorted(placeholder_fields(cand.prompt) or ["<invalid>"]) != self._fields:
            cand.status = "rejected_placeholders"
            self.stats.rejected_placeholders += 1
            logger.info("APO: %s rejected: its placeholders differ from %s", cid, self._fields)
            return None
        await self._publish(store, cand)
        if self.minibatch_gate:
            parent_score = _mean_of(parent_rewards)
            cand_rewards, _ = await self._run_batch(store, cand, "train", minibatch)
            cand.gate_parent_score, cand.gate_score = parent_score, _mean_of(cand_rewards)
            if cand.gate_score <= parent_score:
                cand.status = "rejected_gate"
                self.stats.rejected_gate += 1
                self._show_progress()
                return None
        cand.status = "evaluated"
        return cand

    async def _ask_optimizer(
        self, parent: Candidate, examples: list[Example], cand: Candidate, call_seed: int
    ) -> str | None:
        transcripts = format_examples(examples, self.max_critique_conversations, self.max_critique_tokens)
        values = {"prompt": parent.prompt, "examples": transcripts, "placeholders": _braced(self._fields)}
        gradient_model, edit_model = self._models()
        if self.edit_mode == "critique_then_edit":
            critique = await self._call(
                gradient_model, self.prompts.render(self.prompts.critique, values), cand
            )
            if len(critique.split()) < 3:
                self.stats.empty_critiques += 1
                logger.info("APO: empty or unusable critique for %s; skipped", cand.id)
                return None
            cand.critique = critique
            reply = await self._call(
                edit_model, self.prompts.render(self.prompts.edit, {**values, "critique": critique}), cand
            )
        else:
            reply = await self._call(gradient_model, self.prompts.render(self.prompts.rewrite, values), cand)
            cand.critique = None
        text = extract_prompt(reply)
        if not text or text.strip() == parent.prompt.strip():
            self.stats.empty_critiques += 1
            logger.info("APO: the optimizer returned no new prompt for %s; skipped", cand.id)
            return None
        return text

    async def _call(self, model: str, prompt: str, cand: Candidate) -> str:
        self._check_stop()
        if self.max_llm_tokens is not None and self._llm.tokens >= self.max_llm_tokens:
            raise _Stop(f"max_llm_tokens={self.max_llm_tokens} reached ({self._llm.tokens} tokens)")
        reply, used = await self._llm.chat(model, prompt, self.diversity_temperature, self.max_edit_tokens)
        cand.tokens += used
        return reply

    # --- evaluation ---------------------------------------------------------------------

    async def _score(self, store: LightningStore, cand: Candidate, indices: list[int]) -> None:
        """Score ``cand`` on the validation examples it has no score for yet."""
        todo = [i for i in indices if i not in cand.scores]
        if todo:
            rewards, _ = await self._run_batch(store, cand, "val", todo)
            for i, samples in rewards.items():
                cand.scores[i] = statistics.fmean(samples)
                cand.variances[i] = statistics.pvariance(samples) if len(samples) > 1 else 0.0

    async def _run_batch(
        self,
        store: LightningStore,
        cand: Candidate,
        split: Literal["train", "val"],
        indices: list[int],
        *,
        want_examples: bool = False,
    ) -> tuple[dict[int, list[float]], list[Example]]:
        """Run ``cand`` on tasks ``indices`` of ``split`` (each ``samples_per_task`` times), all at once.

        Finished rollouts with the same key (this run, earlier in it or before a restart) are reused.
        """
        self._check_stop()
        dataset = self._train if split == "train" else self._val
        mode: RolloutMode = "train" if split == "train" else "val"
        keys = [(i, s, self._key(cand, split, i, s)) for i in indices for s in range(self.samples_per_task)]
        new = [(i, s, k) for i, s, k in keys if k not in self._known]
        cut = False
        if new and self.max_rollouts is not None:
            room = self.max_rollouts - self.stats.rollouts
            if room <= 0:
                raise _Stop(f"max_rollouts={self.max_rollouts} reached")
            if room < len(new):
                new, cut = new[:room], True  # exact budget: spend what is left, then stop
        if new:
            resources_id = self._resources_id(cand)
            requests = [
                EnqueueRequest(
                    input=dataset[i],
                    mode=mode,
                    resources_id=resources_id,
                    metadata={"apo_key": k, "step": cand.round},  # step: the dashboard's reward curve
                )
                for i, _, k in new
            ]
            rollouts = await store.enqueue_many_rollouts(requests)
            ids = [r.rollout_id for r in rollouts]
            finished = {
                r.rollout_id for r in await store.wait_for_rollouts(ids, timeout=self.rollout_batch_timeout)
            }
            for (_, _, k), rid in zip(new, ids, strict=True):
                if rid not in finished:
                    logger.warning(
                        "APO: rollout %s did not finish in %.0f s; scored 0", rid, self.rollout_batch_timeout
                    )
                    await store.update_rollout(rid, status="cancelled")
                self._known[k] = rid
            self.stats.rollouts += len(new)
            cand.rollouts += len(new)
        rewards: dict[int, list[float]] = {}
        examples: list[Example] = []
        for i, _, k in keys:
            found = self._known.get(k)
            if found is None:
                continue  # cut by the rollout budget
            reward, conversation = await self._outcome(store, found, want_examples)
            rewards.setdefault(i, []).append(reward)
            if want_examples:
                examples.append(Example(task=dataset[i], reward=reward, conversation=conversation))
        self._show_progress()
        if cut:
            raise _Stop(f"max_rollouts={self.max_rollouts} reached")
        return rewards, examples

    async def _outcome(
        self, store: LightningStore, rollout_id: str, want_conversation: bool
    ) -> tuple[float, list[dict[str, Any]]]:
        rollout = await store.get_rollout_by_id(rollout_id)
        if rollout.status != "succeeded":
            return 0.0, []
        spans = (await store.query_spans(rollout_id, "latest")).items
        reward = find_final_reward(spans)
        conversation: list[dict[str, Any]] = []
        if want_conversation:
            try:
                calls = self._messages(spans)
            except BadTraceError:
                calls = []
            conversation = calls[-1]["messages"] if calls else []
        return (0.0 if reward is None else float(reward)), conversation

    # --- selection ------------------------------------------------------------------------

    def _parents(self, beam: list[Candidate]) -> list[Candidate]:
        if self.selection == "beam":
            return beam[: self.beam_width]
        weights = self._front_weights()
        front = [c for c in self.candidates if weights.get(c.id)]
        return self._rng.choices(front, weights=[weights[c.id] for c in front], k=self.beam_width)

    def _front_weights(self) -> dict[str, int]:
        """For each candidate on the Pareto front: on how many validation examples it is (among) the best."""
        pool = [c for c in self.candidates if c.status == "evaluated" and len(c.scores) == len(self._val)]
        counts: dict[str, int] = {}
        for i in range(len(self._val)):
            top = max(c.scores[i] for c in pool)
            for c in pool:
                if c.scores[i] == top:
                    counts[c.id] = counts.get(c.id, 0) + 1
        # drop candidates dominated by another (as good everywhere, better somewhere)
        front = [c for c in pool if c.id in counts]
        kept = {
            c.id: counts[c.id]
            for c in front
            if not any(_dominates(o, c, len(self._val)) for o in front if o is not c)
        }
        return kept

    def _pareto_front(self) -> list[Candidate]:
        weights = self._front_weights()
        return sorted((c for c in self.candidates if c.id in weights), key=lambda c: -(c.val_score or 0.0))

    def _update_best(self) -> None:
        full = [c for c in self.candidates if c.status == "evaluated" and len(c.scores) == len(self._val)]
        if full:
            best = max(full, key=lambda c: c.val_score or 0.0)  # ties keep the earliest
            self.best = best

    # --- resources, resume, outputs -------------------------------------------------------

    def _key(self, cand: Candidate, split: str, index: int, sample: int) -> str:
        digest = hashlib.sha256(cand.prompt.encode()).hexdigest()[:16]  # same prompt, same evaluation
        return f"{self.run_name}|{digest}|{split}|{index}|{sample}"

    def _resources_id(self, cand: Candidate) -> str:
        return f"{self.run_name}:{cand.id}"

    async def _publish(self, store: LightningStore, cand: Candidate) -> None:
        rid = self._resources_id(cand)
        try:
            await store.get_resources_by_id(rid)
        except NotFoundError:
            await store.update_resources(
                rid, {**self._base_resources, self._prompt_name: PromptTemplate(cand.prompt)}
            )

    async def _published_prompt(self, store: LightningStore, cid: str) -> str | None:
        try:
            update = await store.get_resources_by_id(f"{self.run_name}:{cid}")
        except NotFoundError:
            return None
        template = update.resources.get(self._prompt_name)
        return template.template if isinstance(template, PromptTemplate) else None

    async def _publish_best(self, store: LightningStore) -> None:
        """The best prompt as the versioned resource ``{run_name}:best`` and as a file."""
        if self.best is None or self.best.prompt == self._best_published:
            return
        await store.update_resources(
            f"{self.run_name}:best",
            {**self._base_resources, self._prompt_name: PromptTemplate(self.best.prompt)},
        )
        self._best_published = self.best.prompt
        if self.best_prompt_path is not None:
            self.best_prompt_path.parent.mkdir(parents=True, exist_ok=True)
            self.best_prompt_path.write_text(self.best.prompt + "\n", encoding="utf-8")

    async def _previous_rollouts(self, store: LightningStore) -> dict[str, str]:
        """Keys of this run's finished rollouts already in the store; unfinished ones are cancelled."""
        known: dict[str, str] = {}
        prefix = f"{self.run_name}|"
        for rollout in (await store.query_rollouts()).items:
            key = (rollout.metadata or {}).get("apo_key")
            if not isinstance(key, str) or not key.startswith(prefix):
                continue
            if rollout.status in ("succeeded", "failed"):
                known[key] = rollout.rollout_id
            elif rollout.status != "cancelled":
                await store.update_rollout(rollout.rollout_id, status="cancelled")
        self._previous_critiques = self._load_critiques()
        if known:
            logger.info(
                "APO %s: resuming with %d finished rollouts from the store", self.run_name, len(known)
            )
        self.stats.reused_rollouts = len(known)
        return known

    def _load_critiques(self) -> dict[str, str]:
        path = self.history_path
        if path is None or not path.is_file():
            return {}
        import json

        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return {c["id"]: c["critique"] for c in data.get("candidates", []) if c.get("critique")}
        except (ValueError, KeyError, TypeError):
            return {}

    def _add_candidate(self, cand: Candidate) -> Candidate:
        self.candidates.append(cand)
        return cand

    def _record_round(self, round_no: int, beam: list[Candidate]) -> None:
        self.rounds.append(
            {
                "round": round_no,
                "beam": [c.id for c in beam],
                "beam_scores": [c.val_score for c in beam],
                "best": None if self.best is None else self.best.id,
                "best_score": None if self.best is None else self.best.val_score,
                "rollouts": self.stats.rollouts,
                "llm_tokens": self._llm.tokens,
                "seconds": round(time.monotonic() - self._started, 2),
            }
        )
        self._show_progress()

    def _checkpoint(self) -> None:
        if self.history_path is not None:
            self.stats.llm_calls, self.stats.llm_tokens = self._llm.calls, self._llm.tokens
            write_history(self.history_path, self.candidates, self.stats, self.best, self.rounds)

    async def _finish(self, store: LightningStore) -> None:
        self._update_best()
        await self._publish_best(store)
        self._checkpoint()
        if self.plot_path is not None and self.rounds:
            write_plot(self.plot_path, self.rounds)
        best = "n/a" if self.best is None else f"{self.best.val_score:.3f} ({self.best.id})"
        logger.info(
            "APO done: best validation score %s; %d rollouts, %d optimizer calls, %d tokens; %d proposals, "
            "%d rejected for placeholders, %d by the minibatch gate, %d empty critiques",
            best,
            self.stats.rollouts,
            self.stats.llm_calls,
            self.stats.llm_tokens,
            self.stats.proposals,
            self.stats.rejected_placeholders,
            self.stats.rejected_gate,
            self.stats.empty_critiques,
        )

    def _show_progress(self) -> None:
        if not self._show:
            return
        best = "n/a" if self.best is None or self.best.val_score is None else f"{self.best.val_score:.3f}"
        budget = f"rollouts {self.stats.rollouts}" + (f"/{self.max_rollouts}" if self.max_rollouts else "")
        budget += f" | tokens {self._llm.tokens}" + (f"/{self.max_llm_tokens}" if self.max_llm_tokens else "")
        elapsed = time.monotonic() - self._started
        budget += f" | {elapsed:.0f}s" + (f"/{self.max_wall_seconds:.0f}s" if self.max_wall_seconds else "")
        sys.stderr.write(f"\rAPO round {self._round}/{self.beam_rounds} | best {best} | {budget}   ")
        sys.stderr.flush()

    # --- checks and wiring ---------------------------------------------------------------

    def _check_stop(self) -> None:
        if self.stop_requested:
            raise _Stop("stop requested")
        if self.max_wall_seconds is not None and time.monotonic() - self._started >= self.max_wall_seconds:
            raise _Stop(f"max_wall_seconds={self.max_wall_seconds:g} reached")

    def _warn_if_budget_small(self) -> None:
        if self.max_rollouts is None:
            return
        s = self.samples_per_task
        per_proposal = s * (
            self.gradient_batch_size * (2 if self.minibatch_gate else 1)
            + min(self.val_batch_size, len(self._val))
        )
        initial = s * len(self._val) if self.run_initial_validation else 0
        if self.max_rollouts < initial + 3 * per_proposal:
            logger.warning(
                "APO: max_rollouts=%d cannot buy three proposals (initial validation %d + about %d per proposal); "
                "raise it or shrink gradient_batch_size/val_batch_size",
                self.max_rollouts,
                initial,
                per_proposal,
            )

    def _seed_resources(self) -> tuple[str, PromptTemplate, dict[str, Any]]:
        resources = dict(self.get_initial_resources() or {})
        templates = {n: r for n, r in resources.items() if isinstance(r, PromptTemplate)}
        if self.prompt_resource is not None:
            found = templates.get(self.prompt_resource)
            if found is None:
                raise ValueError(
                    f"APO prompt_resource={self.prompt_resource!r} is not a PromptTemplate in the initial resources "
                    f"({sorted(resources)}); add it to Trainer(initial_resources={{...}})"
                )
            name = self.prompt_resource
        elif len(templates) == 1:
            name, found = next(iter(templates.items()))
        elif not templates:
            raise ValueError(
                f"APO optimizes a PromptTemplate, but the initial resources have none ({sorted(resources)}). "
                "Add one: Trainer(initial_resources={'prompt_template': PromptTemplate('...')})"
            )
        else:
            raise ValueError(
                f"APO found several PromptTemplates {sorted(templates)}; say which to optimize with APO(prompt_resource=NAME)"
            )
        if found.engine != "f-string":
            raise ValueError(f"APO optimizes f-string templates; {name!r} uses engine {found.engine!r}")
        return name, found, resources

    def _conversation_adapter(self) -> TraceToMessages:
        adapter = self._adapter
        if adapter is None:
            return TraceToMessages(on_bad_data="drop")
        if not isinstance(adapter, TraceToMessages):
            raise TypeError(
                f"APO reads conversations with TraceToMessages, but the trainer's adapter is {type(adapter).__name__}. "
                "Use Trainer(adapter='messages') or leave the adapter unset."
            )
        return adapter

    def _models(self) -> tuple[str, str]:
        gradient = self.gradient_model or self._default_model
        assert gradient is not None  # _make_client made sure there is a model name
        return gradient, self.apply_edit_model or gradient

    def _make_client(self) -> Any:
        llm = self._base_resources.get(self.llm_resource)
        self._default_model = llm.model if isinstance(llm, LLM) else None
        if self.client is not None:
            if self._default_model is None and self.gradient_model is None:
                raise ValueError(
                    "APO(client=...) needs gradient_model= (no LLM resource to take the model name from)"
                )
            return self.client
        if not isinstance(llm, LLM):
            raise ValueError(
                f"APO needs an optimizer model: give APO(client=openai.AsyncOpenAI(...), gradient_model=...) or an LLM "
                f"resource named {self.llm_resource!r} in initial_resources (have {sorted(self._base_resources)})"
            )
        import openai

        api_key = llm.api_key or os.environ.get("OPENAI_API_KEY") or "no-key"
        return openai.AsyncOpenAI(base_url=llm.get_base_url(), api_key=api_key, max_retries=0, timeout=600.0)


def _mean_of(rewards: dict[int, list[float]]) -> float:
    values = [statistics.fmean(v) for v in rewards.values() if v]
    return statistics.fmean(values) if values else 0.0


def _dominates(a: Candidate, b: Candidate, n: int) -> bool:
    ge = all(a.scores[i] >= b.scores[i] for i in range(n))
    return ge and any(a.scores[i] > b.scores[i] for i in range(n))


def _braced(fields: list[str]) -> str:
    return ", ".join("{" + f + "}" for f in fields) or "none"
