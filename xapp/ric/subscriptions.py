"""E2SM-KPM report subscriptions of the configured cells, as the subscription manager takes them.

One subscription per cell: event trigger format 1 (the reporting period), one report action (id 1) with
action definition format 1 (report style 1: the model's measurements in its order, the granularity period
equal to the reporting period, the cell's global id).
"""

from __future__ import annotations

from collections.abc import Sequence

from ranomaly_contracts.e2sm.kpm import CellGlobalId, encode_action_definition, encode_event_trigger
from xapp.ric.cells import RicCell
from xapp.ric.kpm import KpmIntake
from xapp.ric.submgr import Action, E2Subscription, SubmgrClient, SubscriptionKeeper
from xapp.settings import XappSettings

REPORT_ACTION_ID = 1


def kpm_subscriptions(
    cells: Sequence[RicCell], measurements: Sequence[str], period_ms: int, ran_function_id: int
) -> list[tuple[E2Subscription, RicCell]]:
    """One report subscription per cell, with the cell it is for."""
    trigger = encode_event_trigger(period_ms)
    return [
        (
            E2Subscription(
                meid=cell.meid,
                ran_function_id=ran_function_id,
                event_trigger=trigger,
                actions=[
                    Action(
                        REPORT_ACTION_ID,
                        encode_action_definition(measurements, period_ms, CellGlobalId(cell.plmn, cell.nci)),
                    )
                ],
                xapp_event_instance_id=number,
            ),
            cell,
        )
        for number, cell in enumerate(cells, start=1)
    ]


def kpm_keeper(
    client: SubmgrClient,
    cells: Sequence[RicCell],
    measurements: Sequence[str],
    settings: XappSettings,
    intake: KpmIntake,
) -> SubscriptionKeeper[RicCell]:
    """A keeper of the cells' subscriptions that binds each RIC instance id to its cell in the intake."""
    return SubscriptionKeeper(
        client,
        kpm_subscriptions(cells, measurements, settings.period_ms, settings.ran_function_id),
        on_instance=intake.bind,
        on_lost=intake.unbind,
        check_interval_s=settings.resubscribe_check_s,
    )
