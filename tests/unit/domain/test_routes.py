"""The address a new email from a queue goes out from (domain/routes.send_address)."""

from postroom.domain.routes import Route, send_address


def test_first_route_of_the_queue_with_an_address_wins_in_file_order() -> None:
    routes = (
        Route("help@example.com", "support"),
        Route("support@example.com", "support", reply_from="care@example.com"),
    )
    found = send_address(routes, "support")
    assert found is not None and found == (routes[0], "help@example.com")


def test_reply_from_is_preferred_to_the_route_address() -> None:
    routes = (Route("in@example.com", "support", reply_from="out@example.com"),)
    assert send_address(routes, "support") == (routes[0], "out@example.com")


def test_a_wildcard_route_sends_only_with_reply_from() -> None:
    wild = Route("*@billing.example.com", "billing")
    assert send_address((wild,), "billing") is None
    later = Route("billing@example.com", "billing")
    assert send_address((wild, later), "billing") == (later, "billing@example.com")
    wild_with = Route("*@billing.example.com", "billing", reply_from="bills@example.com")
    assert send_address((wild_with,), "billing") == (wild_with, "bills@example.com")


def test_routes_of_other_queues_do_not_count() -> None:
    assert send_address((Route("support@example.com", "support"),), "vip") is None
