"""Shared layer of the auth migration bundle: Supabase Auth / legacy profiles -> Better-Auth."""
