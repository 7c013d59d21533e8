"""MPyC baseline: logistic-regression credit scoring on vertically split data.

The plain vectorized MPyC implementation that `scripts/bench.py` compares the scorecard
engine against (copied from the design sketch; the per-row scalar variant and the
`--verify` option were trimmed, the vectorized algorithm is unchanged).

Parties: m = len(mpc.parties) (run with -M3 locally, or -P/-I for real deployment).
  * features (N x d) are split column-wise over the m parties; party i secret-shares
    only its own column block (np.array_split(range(d), m)[i]);
  * party 0 (model owner) additionally secret-shares the weights w (d,) and bias b;
  * z = X @ w + b  (one secure matmul: 1 resharing + 1 truncation for all N rows);
  * --mode decision : reveal only  dec = [sigmoid(z) < cut]  computed as  z < logit(cut)
                      (sigmoid is monotone -> no sigmoid needed, 1 secure comparison/row)
  * --mode score    : reveal only  p ~= sigmoid(z)  via  p = q(|z|) mirrored by sign(z),
                      q = degree-DEG polynomial fit of sigmoid on [0, R], |z| clamped to R
                      (2 secure comparisons/row + ~6 secure mults/row, all vectorized).
Data are synthetic and generated from --seed so that every party can also compute the
plaintext reference for verification; in the secure run each party uses only its own block.

Each party prints one JSON line when done (with -M3 alone, MPyC starts parties 1 and 2 itself
with their output discarded, so only party 0's line appears). `secs_total` runs from just
after `mpc.start()` (connections already up) to the output having been received.

Examples:
  python scripts/bench_logistic.py --plain --N 1000
  python scripts/bench_logistic.py -M3 --N 1000 --mode decision --reveal-to 0
  python scripts/bench_logistic.py -M3 --N 1000 --mode score --reveal-to 0
  python scripts/bench_logistic.py -M3 --ssl --N 1000
      (--ssl needs .config/{mpyc_ca.crt,party_i.crt,party_i.key})
`--reveal-to 0` reveals the result to party 0 only, as the scorecard engine reveals to its
receiver; the default `all` reveals to every party.
NB: MPyC parses (and strips) its own options first (-M/-I/-P/-T/-L/-K/-B/-C/-W/-f, --ssl, ...;
argparse prefix-matching too), so this script's options deliberately avoid those names.
"""

import argparse
import json
import math
import resource
import sys
import time

import numpy as np
from mpyc import asyncoro
from mpyc.runtime import mpc  # parses and strips MPyC's own command-line options

# ---- count messages sent by this party (MPyC itself only counts bytes) ----
_nmsgs = [0]
_orig_send = asyncoro.MessageExchanger.send


def _counting_send(self, pc, payload):
    _nmsgs[0] += 1
    return _orig_send(self, pc, payload)


asyncoro.MessageExchanger.send = _counting_send

parser = argparse.ArgumentParser()
parser.add_argument("--N", type=int, default=1000, help="number of applicants")
parser.add_argument("--dim", type=int, default=20, help="number of features d")
parser.add_argument("--mode", choices=["decision", "score"], default="decision")
parser.add_argument("--cut", type=float, default=0.2, help="decision: p < cut (e.g. PD < 20%%)")
parser.add_argument("--R", type=float, default=8.0, help="score: clamp |z| at R")
parser.add_argument("--deg", type=int, default=7, help="score: polynomial degree")
parser.add_argument("--fxp", type=str, default="32:16", help="SecFxp l:f (bit length:fraction)")
parser.add_argument(
    "--cmp-bits",
    type=int,
    default=None,
    help="bits for secure comparisons (default: SecFxp bit length l); "
    "smaller is faster but requires |value*2^f| < 2^(bits-1)",
)
parser.add_argument(
    "--reveal-to",
    type=str,
    default="all",
    help="'all' or the index of the one party that learns the result",
)
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--plain", action="store_true", help="plain numpy only, no MPC")
args = parser.parse_args()

N, d = args.N, args.dim


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def logit(p):
    return math.log(p / (1 - p))


def gen_data(N, d, seed):
    rng = np.random.default_rng(seed)
    X = np.clip(rng.standard_normal((N, d)), -4, 4)  # standardized features
    w = rng.normal(0, 0.35, d)  # model weights
    b = -1.0
    return X, w, b


def sigmoid_poly(R, deg):
    """Coefficients c[0..deg] with sigmoid(a) ~= sum c_k v^k, v = 2a/R - 1, a in [0, R]."""
    v = np.cos(np.linspace(0, np.pi, 4001))
    return np.polynomial.polynomial.polyfit(v, sigmoid(R * (1 + v) / 2), deg)


def sigmoid_approx_plain(z, R, deg):
    c = sigmoid_poly(R, deg)
    a = np.minimum(np.abs(z), R)
    q = np.polynomial.polynomial.polyval(2 * a / R - 1, c)
    return np.where(z < 0, 1 - q, q)


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


X, w, b = gen_data(N, d, args.seed)

if args.plain:
    t0 = time.perf_counter()
    z = X @ w + b
    p = sigmoid(z)
    dec = p < args.cut
    t1 = time.perf_counter()
    print(
        json.dumps(
            {
                "impl": "plain-numpy",
                "N": N,
                "d": d,
                "secs": t1 - t0,
                "approx_err_vs_true_sigmoid(score mode)": float(
                    np.max(np.abs(sigmoid_approx_plain(z, args.R, args.deg) - p))
                ),
            }
        )
    )
    sys.exit()

nbits, f = map(int, args.fxp.split(":"))
secfxp = mpc.SecFxp(nbits, f)
m = len(mpc.parties)
blocks = np.array_split(np.arange(d), m)  # column block of each party
L = args.cmp_bits or nbits
receivers = None if args.reveal_to == "all" else int(args.reveal_to)
scale = 2 / args.R if args.mode == "score" else 1.0  # model owner pre-scales w,b (free)
coef = sigmoid_poly(args.R, args.deg)
logit_cut = logit(args.cut)


def lt0(a):
    """Secure [a < 0] for secure array a (returns 0/1 secfxp array, integral)."""
    return mpc.np_sgn(a, l=L, LT=True)


async def run_vec():
    # ---- secret-share inputs: party i -> its column block; party 0 -> weights ----
    Xs = []
    for i, cols in enumerate(blocks):
        if len(cols) == 0:
            continue
        if mpc.pid == i:
            x = secfxp.array(X[:, cols], integral=False)
        else:
            x = secfxp.array(None, shape=(N, len(cols)), integral=False)  # placeholder only
        Xs.append(mpc.input(x, senders=i))
    if mpc.pid == 0:
        wb = secfxp.array(np.append(w, b) * scale, integral=False)
    else:
        wb = secfxp.array(None, shape=(d + 1,), integral=False)
    wb = mpc.input(wb, senders=0)
    Xsec = np.hstack(Xs) if len(Xs) > 1 else Xs[0]  # local (no communication)
    await mpc.gather(Xsec, wb)
    t_in = time.perf_counter()

    y = Xsec @ wb[:d] + wb[d]  # y = scale * z, shape (N,)
    if args.mode == "decision":
        res = lt0(y - logit_cut)  # 1 iff sigmoid(z) < cut
    else:
        s = lt0(y)  # 1 iff z < 0
        v = (1 - 2 * s) * y - 1  # v = 2|z|/R - 1  (>= -1)
        v = v + lt0(1 - v) * (1 - v)  # clamp v <= 1, i.e. |z| <= R
        pw = [v, v * v]  # powers v^1..v^deg, log depth
        while len(pw) < args.deg:
            k = len(pw)  # have v^1..v^k, multiply by v^k
            hi = min(k, args.deg - k)
            prod = np.stack(pw[:hi]) * pw[k - 1]  # one vectorized multiplication
            pw.extend(prod[j] for j in range(hi))
        V = np.stack(pw[: args.deg], axis=1)  # (N, deg)
        q = V @ coef[1:] + coef[0]  # public coefficients: 1 truncation
        res = q + s * (1 - 2 * q)  # sigmoid(-a) = 1 - sigmoid(a)
    out = await mpc.output(res, receivers)
    return t_in, out, y


async def main():
    await mpc.start()
    t0 = time.perf_counter()
    t_in, out, _ = await run_vec()
    t1 = time.perf_counter()
    nbytes = sum(p.protocol.nbytes_sent for p in mpc.parties if p.pid != mpc.pid) if m > 1 else 0
    nmsgs = _nmsgs[0]
    rec = {
        "impl": "vec",
        "mode": args.mode,
        "m": m,
        "pid": mpc.pid,
        "ssl": bool(mpc.options.ssl),
        "N": N,
        "d": d,
        "fxp": args.fxp,
        "cmp_bits": L,
        "reveal_to": args.reveal_to,
        "secs_total": round(t1 - t0, 4),
        "secs_input": round(t_in - t0, 4),
        "secs_compute_output": round(t1 - t_in, 4),
        "ms_per_applicant": round(1000 * (t1 - t0) / N, 4),
        "bytes_sent_this_party": nbytes,
        "msgs_sent_this_party": nmsgs,
        "msgs_per_peer": nmsgs // max(m - 1, 1),
    }
    z_true = X @ w + b
    if out is not None and not np.isnan(np.asarray(out, dtype=float)).any():
        out = np.asarray(out, dtype=float)
        if args.mode == "decision":
            truth = sigmoid(z_true) < args.cut
            rec["decision_mismatches"] = int(np.sum(out.astype(bool) != truth))
            rec["approved"] = int(out.sum())
        else:
            rec["score_maxabs_err_vs_true_sigmoid"] = float(np.max(np.abs(out - sigmoid(z_true))))
            rec["score_maxabs_err_vs_plain_same_approx"] = float(
                np.max(np.abs(out - sigmoid_approx_plain(z_true, args.R, args.deg)))
            )
    rec["peak_mb"] = round(peak_mb(), 1)
    print(json.dumps(rec), flush=True)
    await mpc.shutdown()


mpc.run(main())
