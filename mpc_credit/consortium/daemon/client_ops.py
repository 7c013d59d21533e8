"""What the local client may ask its daemon: `status`, `score`, `submit`, `train`.

`score` is the straight path of `mpc-credit score`: the client names the ids and the policy,
this daemon builds the request and signs it with the party's key. `submit` takes a request
signed elsewhere (tests tamper with one this way). `train` is `mpc-credit train --config`:
the daemon signs a training request for the job, with itself as lender and model owner, once
its own training CSV has the job's label column. All go through the same admission
(`admission.check_submission`, which includes the check every party makes), are published on
the broker, and wait for the runner to answer the client with the result or the error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_credit.consortium.config import Consortium
from mpc_credit.consortium.control import (
    DECIDE,
    MODELS,
    PUBLISH,
    SCORE,
    SET_STATUS,
    STATUS,
    SUBMIT,
    TRAIN,
    ControlRequest,
)
from mpc_credit.consortium.daemon import admission
from mpc_credit.consortium.daemon.control import Handler, LocalClient
from mpc_credit.consortium.daemon.mqtt import MqttLink
from mpc_credit.consortium.daemon.publish_job import PublishingSide
from mpc_credit.consortium.daemon.registry_ops import RegistryOps
from mpc_credit.consortium.daemon.tables import LocalData
from mpc_credit.consortium.messages import Request, new_request
from mpc_credit.consortium.policy import deadline_ceiling
from mpc_credit.consortium.publish_request import AnyRequest, PublishRequest, new_publish_request
from mpc_credit.consortium.train_request import TrainRequest, new_train_request
from mpc_credit.errors import MpcCreditError, SessionError, TimedOutError, UsageError

PRESENCE_WAIT = 1.0  # seconds a just connected daemon gives retained presence messages
AFTER_DEADLINE = 5.0  # seconds the client waits for the outcome after the deadline


class ClientOps:
    """The control socket's operations, over the daemon's parts and shared state."""

    def __init__(
        self,
        cons: Consortium,
        key: Ed25519PrivateKey,
        link: MqttLink,
        data: LocalData,
        presence: Mapping[str, str],
        locals_: MutableMapping[str, LocalClient],
        here: Callable[[], admission.Here],
        state: Callable[[], dict[str, Any]],
        registry: RegistryOps,
        publishing: PublishingSide,
    ) -> None:
        self.cons, self.key, self.link, self.data = cons, key, link, data
        self.presence, self.locals, self.here, self.state = presence, locals_, here, state
        self.registry, self.publishing = registry, publishing
        self.party = link.party

    def handlers(self) -> dict[str, Handler]:
        return {
            STATUS: self.status,
            SCORE: self.score,
            SUBMIT: self.submit,
            TRAIN: self.train,
            MODELS: self.registry.models,
            PUBLISH: self.publish,
            DECIDE: self.registry.decide,
            SET_STATUS: self.registry.set_status,
        }

    async def status(self, op: ControlRequest, local: LocalClient) -> None:
        local.finish("status", **self.state())

    async def score(self, op: ControlRequest, local: LocalClient) -> None:
        """Build and sign the request for the local client, its deadline capped at the
        policy's ceiling for its count, then submit it."""
        version = self.registry.book.resolve(op.model_id)  # UsageError: none such in service
        req = new_request(
            self.key,
            requester=self.party,
            model_id=version.ref,
            model_digest=version.digest,
            mode=op.mode,
            reveal=op.reveal,
            ids=op.ids,
            timeout=min(op.timeout, deadline_ceiling(self.cons.policy, len(op.ids))[0]),
        )
        await self._submit(req, list(op.ids), local)

    async def publish(self, op: ControlRequest, local: LocalClient) -> None:
        """Sign the next version of the local client's model (this party its owner) and run
        the publish session: every party receives its part, then the version is recorded."""
        try:
            record, model = self.registry.publish_record(op)
        except MpcCreditError as exc:
            local.fail(exc)
            return
        req = new_publish_request(self.key, record, timeout=op.timeout)
        self.publishing.offer(req.session, model)
        try:
            await self._submit(req, [], local)
        finally:
            self.publishing.forget(req.session)

    async def submit(self, op: ControlRequest, local: LocalClient) -> None:
        assert op.request is not None  # parse_control gives a submit its request
        await self._submit(op.request, list(op.ids), local)

    async def train(self, op: ControlRequest, local: LocalClient) -> None:
        """Sign a training request for the local client's job (this party the lender and model
        owner), check its own label column, then submit it."""
        assert op.job is not None  # parse_control gives a train its job
        req = new_train_request(self.key, requester=self.party, job=op.job, timeout=op.timeout)
        await self._submit(req, [], local, lambda: self._label_problem(op.job.label))

    def _label_problem(self, label: str) -> MpcCreditError | None:
        """Why this party's training CSV (admitted: configured, present) cannot be the
        lender's: no column `label`, or an unreadable header."""
        from mpc_credit.training.data import read_header

        side = self.here().training
        if side is None or side.data is None:
            return None  # admission refused it already
        try:
            if label not in read_header(side.data):
                return UsageError(f"{side.data}, line 1: no label column {label!r}")
        except MpcCreditError as exc:
            return exc
        return None

    async def _submit(
        self,
        req: AnyRequest,
        ids: list[str],
        local: LocalClient,
        own: Callable[[], MpcCreditError | None] | None = None,
    ) -> None:
        """Check (then this party's `own` check), publish, and wait for the session's outcome
        (sent by the runner)."""
        for _ in range(int(PRESENCE_WAIT / 0.05)):
            if all(p in self.presence for p in self.cons.names):
                break
            await asyncio.sleep(0.05)
        training = isinstance(req, TrainRequest)
        # the applicants this party knows for a scoring request (training, publishing: none)
        known = self.data.known_ids(req.model_id, req.mode) if isinstance(req, Request) else None
        problem = admission.check_submission(
            req,
            ids,
            self.here(),
            connected=self.link.connected.is_set(),
            presence=self.presence,
            known=known,
            data_name=str(self.data.data or ""),
        )
        if problem is None and own is not None:
            problem = own()
        if problem is not None:
            local.fail(problem)
            return
        local.ids = ids if isinstance(req, Request) and req.ids is None else None
        self.locals[req.session] = local
        topic = (
            self.link.topics.train
            if training
            else self.link.topics.publish
            if isinstance(req, PublishRequest)
            else self.link.topics.request
        )
        if not await self.link.publish(topic, req.to_json()):
            self.locals.pop(req.session, None)
            local.fail(SessionError("the broker is not reachable"))
            return
        n = len(self.cons.names)
        local.send("progress", message=f"request {req.session[:8]} sent to {n} parties")
        wait = req.deadline - time.time() + AFTER_DEADLINE
        try:
            await asyncio.wait_for(asyncio.shield(local.finished), wait)
        except asyncio.TimeoutError:
            local.fail(TimedOutError("no outcome before the deadline"))
