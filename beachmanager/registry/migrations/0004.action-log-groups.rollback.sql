DROP FUNCTION beach_manager.record_action_groups(text[], integer[], text[], text[], uuid[], text[],
    jsonb[], text[], timestamptz[], timestamptz[]);
