-- JSON renderings of a bag and a bill with exactly the fields of the
-- library's Bag and Bill row types, so the hottest read (GET /api/bags/{qr})
-- can be answered with bytes PostgreSQL built, in one round trip.

CREATE FUNCTION tt_bag_json(b bag, parent_qr text, bill_no text) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', b.id, 'qr_id', b.qr_id, 'type', b.type, 'status', b.status,
        'dispatch_area', b.dispatch_area, 'parent_id', b.parent_id, 'parent_qr', parent_qr,
        'bill_id', b.bill_id, 'bill_no', bill_no, 'capacity', b.capacity, 'child_count', b.child_count,
        'weight_kg', b.weight_kg, 'created_by', b.created_by, 'created_at', b.created_at,
        'updated_at', b.updated_at)
$$;

CREATE FUNCTION tt_bill_json(x bill) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN x.id IS NULL THEN NULL ELSE json_build_object(
        'id', x.id, 'bill_no', x.bill_no, 'capacity', x.capacity, 'description', x.description,
        'destination', x.destination, 'vehicle_number', x.vehicle_number, 'status', x.status,
        'linked_parent_count', x.linked_parent_count, 'total_child_count', x.total_child_count,
        'total_weight_kg', x.total_weight_kg, 'expected_weight_kg', x.expected_weight_kg,
        'created_by', x.created_by, 'created_at', x.created_at, 'updated_at', x.updated_at,
        'completed_at', x.completed_at) END
$$;
