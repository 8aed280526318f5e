"""The route table refuses, when the app is built, rows the generic endpoint
would otherwise get wrong without a word."""

from __future__ import annotations

import dataclasses

import pytest

from tracetrack_api import routes
from tracetrack_api.schema import Field, Text, body
from tracetrack_api.table import Operation, check_table


def op(op_id: str) -> Operation:
    return next(o for o in routes.OPERATIONS if o.id == op_id)


def refused(*rows: Operation) -> str:
    with pytest.raises(ValueError) as info:
        check_table(rows, routes.PATH_VALUES, routes.SPANS_SEGMENTS)
    return str(info.value)


def test_the_real_table_passes():
    check_table(routes.OPERATIONS, routes.PATH_VALUES, routes.SPANS_SEGMENTS)


def test_roles_must_be_a_tuple_of_known_roles():
    assert "roles must be" in refused(dataclasses.replace(op("delete_bill"), roles="admin"))
    assert "roles must be" in refused(dataclasses.replace(op("delete_bill"), roles=("root",)))
    assert "roles must be" in refused(dataclasses.replace(op("delete_bill"), roles=()))


def test_an_idempotent_row_needs_a_caller():
    assert "needs roles" in refused(dataclasses.replace(op("create_bill"), roles=None))


def test_a_parameter_may_be_named_once():
    collide = dataclasses.replace(
        op("add_bill_parent"), body=body(bill_no=Field(Text(64)), parent_qr=Field(Text(64), required=True))
    )
    assert "named twice" in refused(collide)


def test_the_handler_must_take_the_rows_parameters():
    def too_few(ctx, bill_no):
        return None

    def needs_more(ctx, bill_no, parent_qr, reason):
        return None

    assert "takes no ['parent_qr']" in refused(dataclasses.replace(op("add_bill_parent"), handler=too_few))
    assert "needs ['reason']" in refused(dataclasses.replace(op("add_bill_parent"), handler=needs_more))


def test_a_word_after_an_identifier_must_be_reserved_by_the_identifier():
    """A receipt route would make the bill 'MF1/receipt' unreachable and
    /api/bills/MF1%2Freceipt read as MF1's receipt: the identifier's rules
    (and their constraint) must learn the word first, as they did for manifest."""

    def receipt(ctx, bill_no):
        return None

    message = refused(
        dataclasses.replace(op("get_bill"), id="get_receipt", path="/api/bills/{bill_no}/receipt", handler=receipt)
    )
    assert "'receipt'" in message and "reserved words" in message
    history = dataclasses.replace(op("get_bag_history"), id="get_bag_trace", path="/api/bags/{qr}/trace")
    assert "'trace'" in refused(history)


def test_paths_start_with_literals_and_each_row_is_one_method_and_path():
    assert "two literal segments" in refused(dataclasses.replace(op("get_bag"), path="/{qr}/bags"))
    assert "second row" in refused(op("get_bag"), dataclasses.replace(op("get_bag"), id="get_bag_again"))
    assert "no type in PATH_VALUES" in refused(dataclasses.replace(op("get_bag"), path="/api/bags/{code}"))
