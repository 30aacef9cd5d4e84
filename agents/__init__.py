"""yadtq's Faust agents, one family per module: task execution, status, heartbeats."""
