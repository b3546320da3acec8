"""A request-serving model for an offloading LLM server (CacheRatio-v1): fixed-size request slots under a
pre-sampled request stream, continuous batching, admission bounded by host memory, and per-step time from the
FlexGen/HybridServe cost model (`memgym.sim.offload` through the server of `memgym.sim.server`).

Everything is pure and shape-static (`jnp.where`, no data-dependent shapes), so it runs inside `lax.scan`
and vmaps over episodes and over parameters.

Request stream (`sample_stream`, pre-sampled per episode from its key): `n_requests` requests, the first
`n_initial` arriving at t = 0, the rest by a Poisson process of rate `arrival_rate_per_s` (exponential gaps;
rate 0: no further arrivals). Prompt and output lengths are log-normal with the given means and shape σ,
rounded and clipped to [1, max]. The default means are ShareGPT's as reported in the vLLM paper (Kwon et al.,
"Efficient Memory Management for Large Language Model Serving with PagedAttention", arXiv 2309.06180, §6.1:
ShareGPT prompts average 161 tokens and outputs 338); the paper gives histograms, not a fitted shape, so σ is a
chosen value (1.0: a heavy tail; with the default 1024-token caps about 5 % of outputs and 1 % of prompts are
clipped, which lowers the realised means to about 301 and 156 tokens) — the CacheRatio-v1 scenario sets them.

Slots (`Slots`): per slot the cached tokens held as K,V and as layer-input activations (the cache kind
share of that request), the output tokens still to generate and an active flag.

One step (`advance`) is `iterations` decode iterations of the running batch at one activation share `share`
for every cache entry written in it (entries keep their form):

1. Admission, first come first served: the waiting requests that have arrived (arrival ≤ clock) take free
   slots in arrival order while the host's committed memory stays within capacity (head-of-line blocking:
   admission stops at the first request that does not fit). A request commits its prompt and this step's
   output entries in form `share` and the rest of its output in the smaller form (`min_form_split`); a running request's committed memory is its cache plus
   its remaining output in the smaller form. So committed memory never exceeds host capacity: the entries of
   a step may take the larger form only where the capacity allows it (`share_feasible`), and the smaller form
   always fits.
2. Prefill of the admitted requests (one pass over the model, FlexGen's prefill layer at their mean prompt
   length: the s² attention term uses the mean prompt, a small error for prompts of hundreds of tokens next to
   the s·d² GEMMs), then the decode iterations: slot i runs n_i = min(tokens left, iterations); the decode
   time is `max n_i` iterations of FlexGen's decode layer for the mean running batch Σ n_i / max n_i at the
   token-weighted mean attended context, with the entries written in the step in form `share`. Weights are
   streamed once per layer per iteration for the whole batch (the zig-zag block schedule), the cache read over
   PCIe (activations expanded to K,V on the GPU by recomputation), new entries written back to the host.
   With every slot running all iterations this is exactly `CacheRatio-v0`'s step (its `step_time`).
3. Slots whose output is complete free their memory at the step's end.
4. The clock advances by the step's time; an idle server (nothing running, nothing admitted) waits for the next
   arrival instead (time to it; 0 once the stream is exhausted).

Host memory is FlexGen's CPU decode peak (`offload.peak_terms`) for the running batch as a block of its mean
sequence: the host's share of the weights, hidden states and the cache of every running request. The GPU's
weight share `wg` is fixed per scenario for the longest request (`server.weights_on_gpu` at the maximum
prompt and output), so the GPU working set always fits.

Functions take `params` with the server's fields (`model`, `rates`, `wg`, `gbs`; `memgym.sim.server`) and
`iterations` (decode iterations per step, a float).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import offload
from .server import system_placement
from .specs import pytree_dataclass

NO_ARRIVAL_S = 1e30  # arrival time of a request that never arrives (rate 0); finite, so no inf reaches a sum


@pytree_dataclass
class Stream:
    """One episode's requests in arrival order (f[n_requests] each)."""

    arrival_s: jax.Array
    prompt_len: jax.Array
    output_len: jax.Array


@pytree_dataclass
class Slots:
    """Request slots (f[n_slots] each; `active` bool)."""

    kv_tokens: jax.Array  # cached tokens held as K,V
    act_tokens: jax.Array  # cached tokens held as layer-input activations
    left: jax.Array  # output tokens still to generate
    active: jax.Array


@pytree_dataclass
class ServingState:
    slots: Slots
    stream: Stream
    next_request: jax.Array  # i32: index of the first request not yet admitted
    clock_s: jax.Array


def lognormal_mu(mean, sigma):
    """μ of a log-normal with this mean and shape σ: log(mean) − σ²/2."""
    return jnp.log(mean) - 0.5 * sigma**2


def sample_lengths(key, n, mean, sigma, max_len):
    """n integer-valued log-normal lengths (mean `mean`, shape `sigma`), clipped to [1, max_len], as float32."""
    z = jax.random.normal(key, (n,))
    x = jnp.exp(lognormal_mu(mean, sigma) + sigma * z)
    return jnp.clip(jnp.round(x), 1.0, max_len)


def sample_stream(key, n_requests: int, arrival_rate_per_s, n_initial, prompt_mean, prompt_sigma, output_mean,
                  output_sigma, max_prompt, max_output) -> Stream:
    """The episode's request stream: `n_initial` requests at t = 0, then Poisson arrivals (rate 0: none)."""
    k_gap, k_in, k_out = jax.random.split(key, 3)
    idx = jnp.arange(n_requests)
    later = (idx >= n_initial).astype(jnp.float32)
    gaps = jax.random.exponential(k_gap, (n_requests,)) * later
    rate_ok = arrival_rate_per_s > 0
    t = jnp.cumsum(gaps) / jnp.where(rate_ok, arrival_rate_per_s, 1.0)
    arrival = jnp.where(idx < n_initial, 0.0, jnp.where(rate_ok, jnp.minimum(t, NO_ARRIVAL_S), NO_ARRIVAL_S))
    return Stream(arrival_s=arrival.astype(jnp.float32),
                  prompt_len=sample_lengths(k_in, n_requests, prompt_mean, prompt_sigma, max_prompt),
                  output_len=sample_lengths(k_out, n_requests, output_mean, output_sigma, max_output))


def empty_slots(n_slots: int) -> Slots:
    z = jnp.zeros((n_slots,), jnp.float32)
    return Slots(kv_tokens=z, act_tokens=z, left=z, active=jnp.zeros((n_slots,), bool))


def initial_state(stream: Stream, n_slots: int) -> ServingState:
    return ServingState(slots=empty_slots(n_slots), stream=stream, next_request=jnp.int32(0),
                        clock_s=jnp.float32(0.0))


# ---- memory ------------------------------------------------------------------------------------------------


def act_smaller(params):
    """Whether an activation entry is smaller than a K,V one (MHA models; not GQA models with h_kv·d_h < d/2)."""
    m = params.model
    return offload.act_bytes_per_token_layer(m) <= offload.kv_bytes_per_token_layer(m)


def min_form_split(params, tokens):
    """(kv, act) of `tokens` entries all in the smaller form."""
    small_act = act_smaller(params)
    return jnp.where(small_act, 0.0, tokens), jnp.where(small_act, tokens, 0.0)


def host_bytes(params, n, kv_sum, act_sum):
    """Host bytes of a running batch of `n` requests holding `kv_sum` / `act_sum` cached tokens in all (FlexGen's
    CPU decode peak for the batch as a block of its mean sequence)."""
    per = jnp.maximum(n, 1.0)
    p = system_placement(params, 0.0)
    return offload.peak_terms(params.model, p, n, jnp.minimum(params.gbs, n), 1.0, kv_sum / per, act_sum / per)[2]


def gpu_bytes(params, n, kv_sum, act_sum):
    """GPU bytes of the same batch (the weights' GPU share and one GPU batch's working set)."""
    per = jnp.maximum(n, 1.0)
    p = system_placement(params, 0.0)
    t = offload.peak_terms(params.model, p, n, jnp.minimum(params.gbs, n), 1.0, kv_sum / per, act_sum / per)
    return t[0]


def host_capacity(params):
    """Usable host bytes (mem_alpha × capacity)."""
    return offload.capacities(params.rates)[1]


def committed(params, slots: Slots):
    """(n, kv_sum, act_sum) of the running batch at its end: its cache plus every remaining output token in
    the smaller form."""
    act = slots.active.astype(jnp.float32)
    fkv, fact = min_form_split(params, slots.left * act)
    return act.sum(), ((slots.kv_tokens + fkv) * act).sum(), ((slots.act_tokens + fact) * act).sum()


def committed_bytes(params, slots: Slots):
    return host_bytes(params, *committed(params, slots))


def step_iterations(params, slots: Slots):
    """n_i = min(tokens left, iterations) per running slot (0 elsewhere)."""
    return jnp.where(slots.active, jnp.minimum(slots.left, params.iterations), 0.0)


def committed_after_writes(params, slots: Slots, share):
    """Committed host bytes once the running slots' entries of this step are written in form `share`."""
    n_i = step_iterations(params, slots)
    n, kv, act = committed(params, slots)
    wkv, wact = min_form_split(params, n_i.sum())  # the reservation these entries held
    total = n_i.sum()
    return host_bytes(params, n, kv - wkv + (1.0 - share) * total, act - wact + share * total)


def share_feasible(params, slots: Slots, shares):
    """bool[len(shares)]: the shares whose entries keep committed host memory within capacity (the smaller
    form always does, given the invariant)."""
    cap = host_capacity(params) * (1 + 1e-6)
    used = jax.vmap(lambda a: committed_after_writes(params, slots, a))(shares)
    return used <= cap


# ---- admission ---------------------------------------------------------------------------------------------


def waiting(state: ServingState):
    """Requests that have arrived and are not yet admitted."""
    s = state.stream
    idx = jnp.arange(s.arrival_s.shape[0])
    return ((idx >= state.next_request) & (s.arrival_s <= state.clock_s)).sum()


def admit(params, state: ServingState, share):
    """Admit arrived requests first come first served into free slots while committed host memory fits (their
    prompts and this step's output entries in form `share`, the rest of their outputs reserved in the smaller
    form), after this step's writes of the running slots in form `share`. Returns (slots, admitted bool[n_slots], n_admitted)."""
    slots, s = state.slots, state.stream
    n_slots, n_req = slots.active.shape[0], s.arrival_s.shape[0]
    c_idx = state.next_request + jnp.arange(n_slots)  # candidates in arrival order
    valid = (c_idx < n_req)
    ci = jnp.minimum(c_idx, n_req - 1)
    arrived = valid & (s.arrival_s[ci] <= state.clock_s)
    prompt, out = s.prompt_len[ci], s.output_len[ci]
    now = jnp.minimum(out, params.iterations)  # the entries it writes this step, in form `share`
    okv, oact = min_form_split(params, out - now)  # the rest of its output, reserved in the smaller form
    c_kv = (1.0 - share) * (prompt + now) + okv
    c_act = share * (prompt + now) + oact
    # the running batch's commitment after its own writes at `share`
    n_i = step_iterations(params, slots)
    n, kv, act = committed(params, slots)
    wkv, wact = min_form_split(params, n_i.sum())
    kv = kv - wkv + (1.0 - share) * n_i.sum()
    act = act - wact + share * n_i.sum()
    j = jnp.arange(1, n_slots + 1, dtype=jnp.float32)
    used = jax.vmap(host_bytes, in_axes=(None, 0, 0, 0))(params, n + j, kv + jnp.cumsum(c_kv), act + jnp.cumsum(c_act))
    free = ~slots.active
    ok = arrived & (used <= host_capacity(params) * (1 + 1e-6)) & (j <= free.sum())
    n_admit = jnp.cumprod(ok.astype(jnp.int32)).sum()
    rank = jnp.cumsum(free.astype(jnp.int32)) - 1
    take = free & (rank < n_admit)
    src = jnp.clip(state.next_request + rank, 0, n_req - 1)
    p_new, o_new = s.prompt_len[src], s.output_len[src]
    new = Slots(kv_tokens=jnp.where(take, (1.0 - share) * p_new, slots.kv_tokens),
                act_tokens=jnp.where(take, share * p_new, slots.act_tokens),
                left=jnp.where(take, o_new, slots.left), active=slots.active | take)
    return new, take, n_admit


# ---- time --------------------------------------------------------------------------------------------------


def step_time(params, slots: Slots, admitted, share):
    """Seconds of one step for the whole model: the admitted requests' prefill (their prompts already in
    `slots`), then the decode iterations of every running slot with this step's entries in form `share`.
    Returns (total_s, pcie_s, gpu_s, tokens, bytes dict)."""
    m, r = params.model, params.rates
    L = m.n_layers
    p = system_placement(params, share)
    n_i = step_iterations(params, slots)
    tokens = n_i.sum()
    k_run = n_i.max()
    k_div = jnp.maximum(k_run, 1.0)
    bls = tokens / k_div  # mean running batch per iteration
    tok_div = jnp.maximum(tokens, 1e-9)
    grow = (n_i * (n_i + 1.0) / 2.0).sum()  # the step's own entries attended, summed over its iterations
    ctx_kv = ((n_i * slots.kv_tokens).sum() + (1.0 - share) * grow) / tok_div
    ctx_act = ((n_i * slots.act_tokens).sum() + share * grow) / tok_div
    gbs = jnp.minimum(params.gbs, jnp.maximum(bls, 1e-6))
    d = offload.decode_layer(m, r, p, bls, gbs, ctx_kv, ctx_act, share)
    n_new = admitted.astype(jnp.float32).sum()
    prompt = jnp.where(admitted, slots.kv_tokens + slots.act_tokens, 0.0).sum() / jnp.maximum(n_new, 1.0)
    pre = offload.prefill_layer(m, r, p, jnp.maximum(n_new, 1e-6), jnp.minimum(params.gbs, jnp.maximum(n_new, 1e-6)),
                                prompt, share)
    any_new = n_new > 0
    dec = L * k_run
    total = dec * d["layer_s"] + jnp.where(any_new, L * pre["layer_s"], 0.0)
    pcie = dec * d["ctog_s"] + jnp.where(any_new, L * pre["ctog_s"], 0.0)
    gpu = dec * d["gpu_s"] + jnp.where(any_new, L * pre["comp_s"], 0.0)
    nbytes = {"pcie_bytes": dec * d["h2d_bytes"] + jnp.where(any_new, L * pre["h2d_bytes"], 0.0),
              "weights_bytes": (dec + any_new) * d["weights_h2d_bytes"],
              "cache_bytes": dec * d["cache_h2d_bytes"],
              "d2h_bytes": dec * d["d2h_bytes"] + jnp.where(any_new, L * pre["d2h_bytes"], 0.0)}
    return total, pcie, gpu, tokens, nbytes


def decode_times(params, slots: Slots, share):
    """(pcie_s, gpu_s) of the coming step's decode iterations at `share` without admissions (features)."""
    none = jnp.zeros_like(slots.active)
    _, pcie, gpu, _, _ = step_time(params, slots, none, share)
    return pcie, gpu


# ---- one step ----------------------------------------------------------------------------------------------


def advance(params, state: ServingState, share):
    """One step at activation share `share` (see the module docstring). Returns (state, out) with out: total_s,
    pcie_s, gpu_s, tokens, admitted, finished, waiting (after admission), running, bytes."""
    slots, admitted, n_admit = admit(params, state, share)
    total, pcie, gpu, tokens, nbytes = step_time(params, slots, admitted, share)
    n_i = step_iterations(params, slots)
    left = slots.left - n_i
    done = slots.active & (left <= 0)
    keep = slots.active & ~done
    new_slots = Slots(kv_tokens=jnp.where(keep, slots.kv_tokens + (1.0 - share) * n_i, 0.0),
                      act_tokens=jnp.where(keep, slots.act_tokens + share * n_i, 0.0),
                      left=jnp.where(keep, left, 0.0), active=keep)
    nxt = state.next_request + n_admit
    n_req = state.stream.arrival_s.shape[0]
    idle = (tokens <= 0) & (n_admit == 0)
    next_arrival = state.stream.arrival_s[jnp.minimum(nxt, n_req - 1)]
    wait = jnp.where((nxt < n_req) & (next_arrival < NO_ARRIVAL_S), jnp.maximum(next_arrival - state.clock_s, 0.0), 0.0)
    total = jnp.where(idle, wait, total)
    new = ServingState(slots=new_slots, stream=state.stream, next_request=nxt.astype(jnp.int32),
                       clock_s=state.clock_s + total)
    out = {"total_s": total, "pcie_s": jnp.where(idle, 0.0, pcie), "gpu_s": jnp.where(idle, 0.0, gpu),
           "tokens": tokens, "admitted": n_admit.astype(jnp.float32), "finished": done.sum().astype(jnp.float32),
           "running": slots.active.sum().astype(jnp.float32), "waiting": waiting(new).astype(jnp.float32),
           "idle": idle, **nbytes}
    return new, out
