"""What a click or a submission in the console means in Slack's terms. Pure.

The page names an element by position (block index, element index or ``accessory``) and
sends raw values (text, option values); this module finds the element in the blocks the
workspace holds and builds the ``actions`` entry and ``state.values`` Slack would send,
so a page cannot invent elements the app never posted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Elements whose state is a text value, and the key Slack puts it under.
_VALUE_KEYS = {
    "plain_text_input": "value",
    "number_input": "value",
    "email_text_input": "value",
    "url_text_input": "value",
    "datepicker": "selected_date",
    "timepicker": "selected_time",
    "users_select": "selected_user",
    "conversations_select": "selected_conversation",
    "channels_select": "selected_channel",
}
_ONE_OPTION = ("static_select", "radio_buttons", "overflow", "external_select")
_MANY_OPTIONS = ("checkboxes", "multi_static_select")


class UnknownElement(ValueError):
    """The page named an element that is not in the message or modal."""


def block_id(block: Mapping[str, Any], index: int) -> str:
    """A block's id; Slack makes one up when the app gave none (here: by position)."""
    return str(block.get("block_id") or f"b{index}")


def action_id(element: Mapping[str, Any], index: int) -> str:
    return str(element.get("action_id") or f"a{index}")


@dataclass(frozen=True)
class Located:
    element: dict[str, Any]
    block_id: str
    action_id: str


def locate(blocks: Sequence[Any], block_index: int, element: int | str) -> Located:
    """The interactive element at ``blocks[block_index]``: ``element`` is an index into
    an actions block's elements, ``"accessory"`` a section's, ``"element"`` an input's."""
    if not 0 <= block_index < len(blocks) or not isinstance(blocks[block_index], dict):
        raise UnknownElement(f"there is no block {block_index}")
    block = blocks[block_index]
    found: Any = None
    position = 0
    if element in ("accessory", "element"):
        found = block.get(str(element))
    elif isinstance(element, int):
        elements = block.get("elements")
        if isinstance(elements, list) and 0 <= element < len(elements):
            found, position = elements[element], element
    if not isinstance(found, dict) or not isinstance(found.get("type"), str):
        raise UnknownElement(f"there is no element {element!r} in block {block_index}")
    return Located(found, block_id(block, block_index), action_id(found, position))


def _options(element: Mapping[str, Any]) -> list[dict[str, Any]]:
    options = [o for o in element.get("options") or [] if isinstance(o, dict)]
    for group in element.get("option_groups") or []:
        if isinstance(group, dict):
            options.extend(o for o in group.get("options") or [] if isinstance(o, dict))
    return options


def _option(element: Mapping[str, Any], value: Any) -> dict[str, Any] | None:
    return next((dict(o) for o in _options(element) if o.get("value") == value), None)


def element_state(element: Mapping[str, Any], raw: Any) -> dict[str, Any]:
    """One element's entry in ``state.values``, from what the person typed or picked."""
    etype = str(element["type"])
    if etype in _ONE_OPTION:
        return {"type": etype, "selected_option": _option(element, raw)}
    if etype in _MANY_OPTIONS:
        picked = raw if isinstance(raw, list) else []
        chosen = [o for o in (_option(element, v) for v in picked) if o is not None]
        return {"type": etype, "selected_options": chosen}
    value = None if raw in (None, "") else str(raw)
    return {"type": etype, _VALUE_KEYS.get(etype, "value"): value}


def state_values(blocks: Sequence[Any], raw: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``state.values`` of a message or modal: every input (and actions-block input) the
    blocks hold, with what ``raw`` (``{block_id: {action_id: value}}``) gives it, else its
    initial value, as Slack sends it."""
    out: dict[str, dict[str, Any]] = {}
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        if block.get("type") == "input" and isinstance(block.get("element"), dict):
            elements = [(block["element"], 0)]
        elif block.get("type") == "actions":
            elements = [
                (e, j)
                for j, e in enumerate(block.get("elements") or [])
                if isinstance(e, dict) and e.get("type") != "button"
            ]
        else:
            continue
        bid = block_id(block, i)
        given = raw.get(bid)
        if not isinstance(given, dict):
            given = {}
        for element, j in elements:
            aid = action_id(element, j)
            value = given.get(aid) if aid in given else _initial(element)
            out.setdefault(bid, {})[aid] = element_state(element, value)
    return out


def _initial(element: Mapping[str, Any]) -> Any:
    if "initial_value" in element:
        return element["initial_value"]
    option = element.get("initial_option")
    if isinstance(option, dict):
        return option.get("value")
    options = element.get("initial_options")
    if isinstance(options, list):
        return [o.get("value") for o in options if isinstance(o, dict)]
    return None


def action_entry(located: Located, raw: Any) -> dict[str, Any]:
    """The ``actions[0]`` of a block_actions payload for a click or a pick."""
    element = located.element
    entry: dict[str, Any] = {
        "type": element["type"],
        "action_id": located.action_id,
        "block_id": located.block_id,
    }
    if element["type"] == "button":
        entry["text"] = element.get("text")
        entry["value"] = element.get("value", "")
        if element.get("style"):
            entry["style"] = element["style"]
        return entry
    state = element_state(element, raw)
    state.pop("type")
    entry.update(state)
    return entry
