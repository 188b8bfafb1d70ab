# The shipped fixtures: telegram_api, discord_api, slack_api, marker_dir, bot_process.
pytest_plugins = ["restart_guard.testing.fixtures"]
