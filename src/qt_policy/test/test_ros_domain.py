"""ROS_DOMAIN_ID: the graph runner refuses one DDS has no ports for, and the tests' own graphs stay inside
the usable range and apart from each other for every base id the test script draws."""
import pytest

from qt_policy.graph.episodes import GraphRun, domain_problem, run_in_ros_graph


@pytest.mark.parametrize("value, ok", [("0", True), ("101", True), ("232", True), ("233", False),
                                       ("250", False), ("-1", False), ("abc", False)])
def test_the_domain_check_names_ids_dds_cannot_use(monkeypatch, value, ok):
    monkeypatch.setenv("ROS_DOMAIN_ID", value)
    assert (domain_problem() is None) == ok


def test_an_unusable_domain_stops_the_graph_before_any_node_starts(monkeypatch, tmp_path):
    monkeypatch.setenv("ROS_DOMAIN_ID", "251")
    rows, error = run_in_ros_graph(GraphRun(episodes_per_task=1), [], tmp_path / "ckpt", tmp_path, tmp_path / "log")
    assert rows == [] and "0 to 232" in error and not (tmp_path / "log").exists()


def test_the_test_lanes_are_usable_and_apart(monkeypatch):
    from qt_test_helpers.nodes import lane_domain_id, own_domain_id

    for base in range(1, 101):  # scripts/test.sh draws 1..100
        monkeypatch.setenv("ROS_DOMAIN_ID", str(base))
        ids = [base, own_domain_id()] + [lane_domain_id(lane) for lane in range(1, 6)]
        assert len(set(ids)) == len(ids), (base, ids)
        for domain in ids:
            monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
            assert domain_problem() is None, (base, domain)
