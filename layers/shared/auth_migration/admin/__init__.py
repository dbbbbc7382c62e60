"""The admin API (GET/PUT /admin/rollout, GET /admin/migrations/{id}): the rollout and the migrations
for people and tools, IAM-authorised. models (bodies), service (what each route does), api (routes)."""
