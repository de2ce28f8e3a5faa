// Commerce Layer's JS SDK as a client of ordercopy: every resource both have, driven as a
// new user of the SDK would write it. tests/interop/test_commerce_layer_sdk.py runs it
// against a real server and reads the summary printed last (one line of JSON):
// {"operations": {resource: {operation: count}}, "failures": [...]}.
//
// Environment: ORDERCOPY_URL (the server), ORDERCOPY_API_KEY (a test-mode key),
// ORDERCOPY_LIVE_API_KEY (a live one) and
// ORDERCOPY_SEED (JSON: what the test made beforehand, that no API call makes).
import assert from 'node:assert/strict'
import { CommerceLayer } from '@commercelayer/sdk/bundle'

const server = new URL(process.env.ORDERCOPY_URL)
const seed = JSON.parse(process.env.ORDERCOPY_SEED)

// The SDK builds https://<organization>.commercelayer.io/api/<path>: the interceptor keeps
// the path and query and swaps the origin for ordercopy's. The API key is a Bearer token,
// as a Commerce Layer access token is.
function client (accessToken) {
  const sdk = CommerceLayer({ organization: 'ordercopy', accessToken })
  sdk.addRequestInterceptor((request) => {
    const url = new URL(request.url)
    return { ...request, url: new URL(url.pathname + url.search, server) }
  })
  return sdk
}
const cl = client(process.env.ORDERCOPY_API_KEY)
// Live mode holds the seeded renewal (ORDERCOPY_LIVE_API_KEY), apart from what the
// test-mode sections count.
const live = client(process.env.ORDERCOPY_LIVE_API_KEY)

const operations = {}
const failures = []

class Stopped extends Error {}

function describe (error) {
  if (cl.isApiError(error)) return { status: error.status, errors: error.errors }
  return { message: error.message, stack: (error.stack || '').split('\n').slice(0, 4) }
}

// One operation: counted when it (and its assertions) passed; otherwise the failure is
// recorded and the rest of its section is skipped (it would build on what failed).
async function step (resource, operation, run) {
  try {
    const result = await run()
    const counts = (operations[resource] ??= {})
    counts[operation] = (counts[operation] ?? 0) + 1
    return result
  } catch (error) {
    failures.push({ resource, operation, ...describe(error) })
    throw new Stopped()
  }
}

// An operation ordercopy must refuse, as Commerce Layer does: an ApiError with `status`
// (and the first error pointing at `pointer`, when given).
async function refused (resource, status, pointer, run) {
  return step(resource, 'refused', async () => {
    const error = await run().then(() => null, (e) => e)
    assert.ok(error, 'answered with success')
    assert.ok(cl.isApiError(error), `not an API error: ${error}`)
    assert.equal(error.status, status, JSON.stringify(error.errors))
    if (pointer) assert.equal(error.first().source.pointer, pointer)
  })
}

async function gone (retrieve) {
  const error = await retrieve().then(() => null, (e) => e)
  assert.ok(cl.isApiError(error) && error.status === 404, `still there: ${error}`)
}

async function section (name, run) {
  try {
    await run()
  } catch (error) {
    if (!(error instanceof Stopped)) failures.push({ resource: name, operation: 'section', ...describe(error) })
  }
}

const ids = (list) => Array.from(list, (r) => r.id)
const codes = (list) => Array.from(list, (r) => r.code)
const shop = {}

await section('skus', async () => {
  const sku = (code, name, price, stock) => step('skus', 'create', () => cl.skus.create({
    code, name, unit_amount_cents: price, currency_code: 'USD', stock_quantity: stock
  }))
  shop.tee = await sku('SDK-TEE', 'SDK tee', 1500, 50)
  shop.mug = await sku('SDK-MUG', 'SDK mug', 900, 20)
  const cap = await sku('SDK-CAP', 'SDK cap', 1200, 5)
  assert.equal(shop.tee.type, 'skus')
  assert.equal(shop.tee.stock_quantity, 50)

  await step('skus', 'retrieve', async () => {
    const tee = await cl.skus.retrieve(shop.tee.id)
    assert.equal(tee.name, 'SDK tee')
    assert.equal(tee.currency_code, 'USD')
  })
  await step('skus', 'fields', async () => {
    const tee = await cl.skus.retrieve(shop.tee.id, { fields: ['code', 'name'] })
    assert.deepEqual(Object.keys(tee).sort(), ['code', 'id', 'name', 'type'])
  })
  await step('skus', 'update', async () => {
    const mug = await cl.skus.update({ id: shop.mug.id, unit_amount_cents: 950, stock_quantity: 30 })
    assert.equal(mug.unit_amount_cents, 950)
    assert.equal(mug.stock_quantity, 30)
    assert.equal(mug.code, 'SDK-MUG')
  })
  await step('skus', 'list', async () => {
    const all = await cl.skus.list({ pageSize: 25 })
    assert.ok(ids(all).includes(shop.tee.id))
    assert.ok(all.recordCount >= 3)
  })
  await step('skus', 'filter', async () => {
    const dear = await cl.skus.list({ filters: { code_start: 'SDK-', unit_amount_cents_gteq: 1000 } })
    assert.deepEqual(codes(dear).sort(), ['SDK-CAP', 'SDK-TEE'])
    const two = await cl.skus.list({ filters: { code_in: ['SDK-TEE', 'SDK-MUG'] } })
    assert.deepEqual(codes(two).sort(), ['SDK-MUG', 'SDK-TEE'])
  })
  await step('skus', 'sort', async () => {
    const up = await cl.skus.list({ filters: { code_start: 'SDK-' }, sort: { code: 'asc' } })
    assert.deepEqual(codes(up), ['SDK-CAP', 'SDK-MUG', 'SDK-TEE'])
    const down = await cl.skus.list({ filters: { code_start: 'SDK-' }, sort: ['-code'] })
    assert.deepEqual(codes(down), ['SDK-TEE', 'SDK-MUG', 'SDK-CAP'])
  })
  await step('skus', 'page', async () => {
    const page = await cl.skus.list({ filters: { code_start: 'SDK-' }, sort: ['-code'], pageSize: 2, pageNumber: 2 })
    assert.deepEqual(codes(page), ['SDK-CAP'])
    assert.equal(page.recordCount, 3)
    assert.equal(page.pageCount, 2)
    assert.ok(page.hasPrevPage())
    assert.ok(!page.hasNextPage())
  })
  await step('skus', 'count', async () => {
    assert.equal(await cl.skus.count({ code_start: 'SDK-' }), 3)
  })
  await refused('skus', 422, '/data/attributes/code', () => cl.skus.create({
    code: 'SDK-TEE', name: 'again', unit_amount_cents: 1, currency_code: 'USD'
  }))
  await step('skus', 'delete', async () => {
    await cl.skus.delete(cap.id)
    await gone(() => cl.skus.retrieve(cap.id))
  })
})

// Bundles and adjustments: what a subscription item may name besides a SKU. A bundle's
// SKUs are the attribute sku_list_items here, not Commerce Layer's sku_lists resource.
await section('bundles', async () => {
  const bundles = cl.bundles
  shop.kit = await step('bundles', 'create', async () => {
    const created = await bundles.create({
      code: 'SDK-KIT', name: 'SDK kit', currency_code: 'USD', price_amount_cents: 2000, compare_at_amount_cents: 2400,
      sku_list_items: [{ sku_code: 'SDK-TEE', quantity: 1 }, { sku_code: 'SDK-MUG', quantity: 2 }]
    })
    assert.equal(created.type, 'bundles')
    assert.equal(created.skus_count, 2)
    return created
  })
  const mini = await step('bundles', 'create', () => bundles.create({
    code: 'SDK-MINI', name: 'SDK mini', currency_code: 'USD', price_amount_cents: 900,
    sku_list_items: [{ sku_code: 'SDK-MUG', quantity: 1 }]
  }))
  await step('bundles', 'retrieve', async () => {
    const kit = await bundles.retrieve(shop.kit.id)
    assert.equal(kit.compare_at_amount_cents, 2400)
    assert.deepEqual(kit.sku_list_items, [{ sku_code: 'SDK-TEE', quantity: 1 }, { sku_code: 'SDK-MUG', quantity: 2 }])
  })
  await step('bundles', 'update', async () => {
    shop.kit = await bundles.update({ id: shop.kit.id, price_amount_cents: 1800 })
    assert.equal(shop.kit.price_amount_cents, 1800)
    assert.equal(shop.kit.code, 'SDK-KIT')
  })
  await step('bundles', 'list', async () => {
    assert.equal((await bundles.list()).recordCount, 2)
  })
  await step('bundles', 'filter', async () => {
    assert.deepEqual(ids(await bundles.list({ filters: { code_eq: 'SDK-MINI' } })), [mini.id])
  })
  await step('bundles', 'sort', async () => {
    assert.deepEqual(ids(await bundles.list({ sort: { price_amount_cents: 'asc' } })), [mini.id, shop.kit.id])
  })
  await refused('bundles', 422, '/data/attributes/sku_list_items', () => bundles.create({
    code: 'SDK-BAD', name: 'bad', currency_code: 'USD', price_amount_cents: 1,
    sku_list_items: [{ sku_code: 'NOT-IN-THE-CATALOG', quantity: 1 }]
  }))
  await step('bundles', 'delete', async () => {
    await bundles.delete(mini.id)
    await gone(() => bundles.retrieve(mini.id))
  })
})

await section('adjustments', async () => {
  const adjustments = cl.adjustments
  shop.loyalty = await step('adjustments', 'create', async () => {
    const created = await adjustments.create({ name: 'SDK loyalty', currency_code: 'USD', amount_cents: -250 })
    assert.equal(created.type, 'adjustments')
    assert.equal(created.distribute_discount, false)
    return created
  })
  const fee = await step('adjustments', 'create', () => adjustments.create({
    name: 'SDK fee', currency_code: 'USD', amount_cents: 300, distribute_discount: true
  }))
  await step('adjustments', 'retrieve', async () => {
    assert.equal((await adjustments.retrieve(fee.id)).distribute_discount, true)
  })
  await step('adjustments', 'update', async () => {
    assert.equal((await adjustments.update({ id: fee.id, amount_cents: 350 })).amount_cents, 350)
  })
  await step('adjustments', 'list', async () => {
    assert.equal((await adjustments.list()).recordCount, 2)
  })
  await step('adjustments', 'filter', async () => {
    assert.deepEqual(ids(await adjustments.list({ filters: { amount_cents_lt: 0 } })), [shop.loyalty.id])
  })
  await step('adjustments', 'sort', async () => {
    assert.deepEqual(ids(await adjustments.list({ sort: { amount_cents: 'desc' } })), [fee.id, shop.loyalty.id])
  })
  await refused('adjustments', 422, '/data/attributes/currency_code', () => adjustments.create({
    name: 'bad', currency_code: 'usd', amount_cents: 1
  }))
  await step('adjustments', 'delete', async () => {
    await adjustments.delete(fee.id)
    await gone(() => adjustments.retrieve(fee.id))
  })
})

await section('addresses', async () => {
  const address = (attributes) => step('addresses', 'create', () => cl.addresses.create(attributes))
  shop.billing = await address({
    first_name: 'Ada', last_name: 'Lovelace', line_1: 'Via Roma 1', city: 'Fiesole', zip_code: '50014', country_code: 'IT'
  })
  shop.shipping = await address({ line_1: 'Corso Como 2', city: 'Monza', country_code: 'IT' })
  const spare = await address({ line_1: 'Rue de Rivoli 3', city: 'Paris', country_code: 'FR' })

  await step('addresses', 'update', async () => {
    const moved = await cl.addresses.update({ id: spare.id, city: 'Lyon', zip_code: '69001' })
    assert.equal(moved.city, 'Lyon')
    assert.equal(moved.line_1, 'Rue de Rivoli 3')
  })
  await step('addresses', 'retrieve', async () => {
    const billing = await cl.addresses.retrieve(shop.billing.id)
    assert.equal(billing.last_name, 'Lovelace')
  })
  const mine = { city_in: ['Fiesole', 'Monza', 'Lyon'] }
  await step('addresses', 'filter', async () => {
    assert.deepEqual(ids(await cl.addresses.list({ filters: { country_code_eq: 'FR', city_eq: 'Lyon' } })), [spare.id])
  })
  await step('addresses', 'sort', async () => {
    const oldest = await cl.addresses.list({ filters: mine, sort: { created_at: 'asc' } })
    assert.deepEqual(ids(oldest), [shop.billing.id, shop.shipping.id, spare.id])
  })
  await step('addresses', 'page', async () => {
    const page = await cl.addresses.list({ filters: mine, sort: { created_at: 'asc' }, pageSize: 2, pageNumber: 2 })
    assert.deepEqual(ids(page), [spare.id])
    assert.equal(page.pageCount, 2)
  })
  await step('addresses', 'delete', async () => {
    await cl.addresses.delete(spare.id)
    await gone(() => cl.addresses.retrieve(spare.id))
  })
})

await section('customers', async () => {
  shop.ada = await step('customers', 'create', () => cl.customers.create({
    email: 'ada@sdk.example', metadata: { source: 'sdk' }
  }))
  const temp = await step('customers', 'create', () => cl.customers.create({ email: 'temp@sdk.example' }))
  await step('customers', 'update', async () => {
    const ada = await cl.customers.update({ id: shop.ada.id, metadata: { source: 'sdk', tier: 'gold' } })
    assert.deepEqual(ada.metadata, { source: 'sdk', tier: 'gold' })
  })
  await step('customers', 'retrieve', async () => {
    assert.equal((await cl.customers.retrieve(shop.ada.id)).email, 'ada@sdk.example')
  })
  await step('customers', 'list', async () => {
    const all = await cl.customers.list()
    assert.ok(all.recordCount >= 4) // the test's two and these two
  })
  await step('customers', 'filter', async () => {
    const ours = await cl.customers.list({ filters: { email_end: '@sdk.example' } })
    assert.equal(ours.length, 2)
  })
  await step('customers', 'sort', async () => {
    const down = await cl.customers.list({ filters: { email_end: '@sdk.example' }, sort: { email: 'desc' } })
    assert.deepEqual(ids(down), [temp.id, shop.ada.id])
  })
  await step('customers', 'delete', async () => {
    await cl.customers.delete(temp.id)
    await gone(() => cl.customers.retrieve(temp.id))
  })
})

await section('customer_payment_sources', async () => {
  const entry = (attributes) => step('customer_payment_sources', 'create', () => cl.customer_payment_sources.create({
    ...attributes, customer: cl.customers.relationship(shop.ada)
  }))
  shop.visa = await entry({ name: 'Visa 4242', payment_source_token: 'tok_visa', expires_on: '2099-12-31' })
  const old = await entry({ name: 'Old card', payment_source_token: 'tok_visa_old_card' })
  assert.ok(shop.visa.payment_source_token.startsWith('••••'), 'the token is shown masked')

  await step('customer_payment_sources', 'update', async () => {
    const updated = await cl.customer_payment_sources.update({ id: old.id, name: 'Old card (expired)', expires_on: '2020-01-31', disabled: true })
    assert.equal(updated.disabled, true)
    assert.equal(updated.expires_on, '2020-01-31')
  })
  await step('customer_payment_sources', 'retrieve', async () => {
    assert.equal((await cl.customer_payment_sources.retrieve(shop.visa.id)).gateway, 'test')
  })
  await step('customer_payment_sources', 'include', async () => {
    const visa = await cl.customer_payment_sources.retrieve(shop.visa.id, { include: ['customer'] })
    assert.equal(visa.customer.email, 'ada@sdk.example')
  })
  await step('customer_payment_sources', 'filter', async () => {
    const usable = await cl.customer_payment_sources.list({ filters: { customer_id_eq: shop.ada.id, disabled_eq: false } })
    assert.deepEqual(ids(usable), [shop.visa.id])
  })
  await step('customer_payment_sources', 'related', async () => {
    assert.equal((await cl.customer_payment_sources.customer(shop.visa.id)).id, shop.ada.id)
  })
  await step('customer_payment_sources', 'delete', async () => {
    await cl.customer_payment_sources.delete(old.id)
    await gone(() => cl.customer_payment_sources.retrieve(old.id))
  })
  await step('customers', 'include', async () => {
    const ada = await cl.customers.retrieve(shop.ada.id, { include: ['customer_payment_sources'] })
    assert.deepEqual(ids(ada.customer_payment_sources), [shop.visa.id])
  })
  await step('customers', 'related', async () => {
    assert.deepEqual(ids(await cl.customers.customer_payment_sources(shop.ada.id)), [shop.visa.id])
  })
})

await section('orders', async () => {
  const newOrder = (more = {}) => step('orders', 'create', () => cl.orders.create({
    currency_code: 'USD',
    customer_email: shop.ada.email,
    customer: cl.customers.relationship(shop.ada),
    billing_address: cl.addresses.relationship(shop.billing),
    shipping_address: cl.addresses.relationship(shop.shipping.id),
    ...more
  }))
  const line = (order, sku, quantity) => step('line_items', 'create', () => cl.line_items.create({
    sku_code: sku.code, quantity, order: cl.orders.relationship(order)
  }))
  const placeOrder = async (order) => {
    await step('orders', '_customer_payment_source_id', async () => {
      const charged = await cl.orders._customer_payment_source_id(order.id, shop.visa.id)
      assert.equal(charged.payment_method, 'credit_card')
    })
    return step('orders', '_place', async () => {
      const placed = await cl.orders._place(order.id)
      assert.equal(placed.status, 'placed')
      assert.equal(placed.payment_status, 'authorized')
      return placed
    })
  }

  const order = await newOrder({ reference: 'sdk-order' })
  assert.equal(order.status, 'draft')
  shop.teeLine = await line(order, shop.tee, 2)
  assert.equal(shop.teeLine.total_amount_cents, 3000)
  shop.mugLine = await line(order, shop.mug, 1)
  shop.order = await placeOrder(order)
  assert.equal(shop.order.total_amount_cents, 3950)

  const other = await newOrder()
  await line(other, shop.mug, 2)
  await placeOrder(other)
  shop.cancelled = await step('orders', '_cancel', async () => {
    const cancelled = await cl.orders._cancel(other.id)
    assert.equal(cancelled.status, 'cancelled')
    assert.equal(cancelled.payment_status, 'voided')
    return cancelled
  })

  const pending = await newOrder()
  await line(pending, shop.tee, 1)
  const dropped = await line(pending, shop.mug, 1)
  await step('line_items', 'delete', async () => {
    await cl.line_items.delete(dropped.id)
    await gone(() => cl.line_items.retrieve(dropped.id))
  })
  await step('orders', 'unlink', async () => {
    await cl.orders.update({ id: pending.id, shipping_address: cl.addresses.relationship(null) })
    const unlinked = await cl.orders.retrieve(pending.id, { include: ['shipping_address', 'billing_address'] })
    assert.equal(unlinked.shipping_address, null)
    assert.equal(unlinked.billing_address.id, shop.billing.id)
  })
  await step('orders', 'update', async () => {
    const updated = await cl.orders.update({ id: shop.order.id, reference: 'sdk-order-1', metadata: { channel: 'sdk' } })
    assert.equal(updated.reference, 'sdk-order-1')
    assert.equal(updated.status, 'placed')
  })
  await step('orders', 'retrieve', async () => {
    assert.equal((await cl.orders.retrieve(shop.order.id)).number, shop.order.number)
  })
  await step('orders', 'include', async () => {
    const withLines = await cl.orders.retrieve(shop.order.id, { include: ['line_items', 'customer'] })
    assert.deepEqual(ids(withLines.line_items).sort(), [shop.teeLine.id, shop.mugLine.id].sort())
    assert.equal(withLines.customer.email, 'ada@sdk.example')
  })
  await step('orders', 'list', async () => {
    assert.ok((await cl.orders.list()).recordCount >= 5) // the test's two and these three
  })
  await step('orders', 'filter', async () => {
    const placed = await cl.orders.list({ filters: { status_eq: 'placed', customer_id_eq: shop.ada.id } })
    assert.deepEqual(ids(placed), [shop.order.id])
  })
  const hers = { customer_id_eq: shop.ada.id }
  await step('orders', 'sort', async () => {
    const newest = await cl.orders.list({ filters: hers, sort: { number: 'desc' } })
    assert.deepEqual(ids(newest), [pending.id, other.id, shop.order.id])
  })
  await step('orders', 'page', async () => {
    const page = await cl.orders.list({ filters: hers, sort: { number: 'desc' }, pageSize: 1, pageNumber: 2 })
    assert.deepEqual(ids(page), [other.id])
    assert.equal(page.pageCount, 3)
    assert.ok(page.hasNextPage() && page.hasPrevPage())
  })
  await step('orders', 'related', async () => {
    assert.equal((await cl.orders.line_items(shop.order.id)).length, 2)
    assert.equal((await cl.orders.customer(shop.order.id)).id, shop.ada.id)
    assert.equal((await cl.orders.billing_address(shop.order.id)).city, 'Fiesole')
  })
  await step('orders', 'delete', async () => {
    const empty = await cl.orders.create({ currency_code: 'EUR' })
    await cl.orders.delete(empty.id)
    await gone(() => cl.orders.retrieve(empty.id))
  })
  await step('customers', 'related', async () => {
    assert.equal((await cl.customers.orders(shop.ada.id)).length, 3)
  })

  await step('line_items', 'retrieve', async () => {
    assert.equal((await cl.line_items.retrieve(shop.teeLine.id)).quantity, 2)
  })
  await step('line_items', 'include', async () => {
    const teeLine = await cl.line_items.retrieve(shop.teeLine.id, { include: ['order'] })
    assert.equal(teeLine.order.id, shop.order.id)
  })
  await step('line_items', 'filter', async () => {
    const lines = await cl.line_items.list({ filters: { order_id_eq: shop.order.id, sku_code_eq: 'SDK-TEE' } })
    assert.deepEqual(ids(lines), [shop.teeLine.id])
  })
  await step('line_items', 'sort', async () => {
    const lines = await cl.line_items.list({ filters: { order_id_eq: shop.order.id }, sort: { created_at: 'desc' } })
    assert.deepEqual(ids(lines), [shop.mugLine.id, shop.teeLine.id])
  })
  await step('line_items', 'page', async () => {
    const page = await cl.line_items.list({ filters: { order_id_eq: shop.order.id }, sort: { created_at: 'asc' }, pageSize: 1, pageNumber: 2 })
    assert.deepEqual(ids(page), [shop.mugLine.id])
  })
  await step('line_items', 'related', async () => {
    assert.equal((await cl.line_items.order(shop.teeLine.id)).id, shop.order.id)
  })
})

await section('order_copies', async () => {
  const copy = await step('order_copies', 'create', async () => {
    const created = await cl.order_copies.create({
      place_target_order: true, reuse_wallet: true, source_order: cl.orders.relationship(shop.order)
    })
    assert.equal(created.status, 'pending')
    assert.equal(created.place_target_order, true)
    return created
  })
  // The order as the SDK returned it, passed whole as the relationship: the SDK sends all
  // of it as the relationship's data (type and id, and every attribute beside them).
  const again = await step('order_copies', 'create', () => cl.order_copies.create({
    cancel_source_order: false, source_order: shop.cancelled
  }))
  await refused('order_copies', 422, '/data/relationships/source_order', () => cl.order_copies.create({ place_target_order: true }))

  await step('order_copies', 'update', async () => {
    const updated = await cl.order_copies.update({
      id: copy.id, reference: 'sdk-copy-1', reference_origin: 'sdk', metadata: { by: 'sdk' }
    })
    assert.equal(updated.reference, 'sdk-copy-1')
    assert.deepEqual(updated.metadata, { by: 'sdk' })
    assert.equal(updated.status, 'pending')
  })
  await step('order_copies', '_abort', async () => {
    const aborted = await cl.order_copies.update({ id: again.id, _abort: true })
    assert.equal(aborted.status, 'aborted')
  })
  await step('order_copies', '_retry', async () => {
    const retried = await cl.order_copies.update({ id: seed.failed_copy, _retry: true })
    assert.equal(retried.status, 'pending')
    assert.equal(retried.errors_count, 0)
  })
  await step('order_copies', 'retrieve', async () => {
    const got = await cl.order_copies.retrieve(copy.id)
    assert.equal(got.reference_origin, 'sdk')
  })
  await step('order_copies', 'fields', async () => {
    const got = await cl.order_copies.retrieve(copy.id, { fields: { order_copies: ['status', 'reference'] } })
    assert.deepEqual(Object.keys(got).sort(), ['id', 'reference', 'status', 'type'])
  })
  await step('order_copies', 'include', async () => {
    const got = await cl.order_copies.retrieve(copy.id, { include: ['source_order'] })
    assert.equal(got.source_order.number, shop.order.number)
    const done = await cl.order_copies.list({ filters: { status_eq: 'completed' }, include: ['target_order', 'source_order'] })
    assert.deepEqual(ids(done), [seed.completed_copy])
    assert.equal(done[0].target_order.type, 'orders')
    assert.notEqual(done[0].target_order.id, done[0].source_order.id)
  })
  await step('order_copies', 'list', async () => {
    assert.equal((await cl.order_copies.list()).recordCount, 4)
  })
  await step('order_copies', 'filter', async () => {
    assert.deepEqual(ids(await cl.order_copies.list({ filters: { status_eq: 'aborted' } })), [again.id])
    assert.deepEqual(ids(await cl.order_copies.list({ filters: { source_order_id_eq: shop.order.id } })), [copy.id])
    const tagged = await cl.order_copies.list({ filters: { reference_start: 'sdk-', status_in: ['pending', 'failed'] } })
    assert.deepEqual(ids(tagged), [copy.id])
  })
  const everyCopy = [seed.completed_copy, seed.failed_copy, copy.id, again.id]
  await step('order_copies', 'sort', async () => {
    assert.deepEqual(ids(await cl.order_copies.list({ sort: { created_at: 'asc' } })), everyCopy)
  })
  await step('order_copies', 'page', async () => {
    const page = await cl.order_copies.list({ sort: ['created_at'], pageSize: 3, pageNumber: 2 })
    assert.deepEqual(ids(page), [again.id])
    assert.equal(page.recordCount, 4)
  })
  await step('order_copies', 'related', async () => {
    assert.equal((await cl.order_copies.source_order(copy.id)).id, shop.order.id)
    assert.equal((await cl.order_copies.target_order(copy.id)), null) // not run yet
    assert.equal((await cl.order_copies.target_order(seed.completed_copy)).type, 'orders')
    assert.equal((await cl.order_copies.order_subscription(copy.id)), null)
    const history = await cl.order_copies.events(seed.completed_copy)
    assert.ok(Array.from(history, (event) => event.kind).includes('completed'))
  })
  await step('order_copies', 'delete', async () => {
    await cl.order_copies.delete(again.id)
    await gone(() => cl.order_copies.retrieve(again.id))
  })
})

await section('order_subscriptions', async () => {
  const wallet = cl.customer_payment_sources
  const subscription = await step('order_subscriptions', 'create', async () => {
    const created = await cl.order_subscriptions.create({
      frequency: 'monthly',
      reference: 'sdk-subscription',
      activate_by_source_order: false,
      source_order: cl.orders.relationship(shop.order),
      customer_payment_source: wallet.relationship(shop.visa)
    })
    assert.equal(created.status, 'draft')
    return created
  })
  const id = subscription.id
  await step('order_subscriptions', 'unlink', async () => {
    await cl.order_subscriptions.update({ id, customer_payment_source: wallet.relationship(null) })
    const unlinked = await cl.order_subscriptions.retrieve(id, { include: ['customer_payment_source'] })
    assert.equal(unlinked.customer_payment_source, null)
  })
  await step('order_subscriptions', 'update', async () => {
    const updated = await cl.order_subscriptions.update({
      id, frequency: 'weekly', metadata: { plan: 'weekly' }, customer_payment_source: wallet.relationship(shop.visa.id)
    })
    assert.equal(updated.frequency, 'weekly')
  })
  await step('order_subscriptions', '_activate', async () => {
    assert.equal((await cl.order_subscriptions._activate(id)).status, 'active')
  })
  await step('order_subscriptions', '_deactivate', async () => {
    assert.equal((await cl.order_subscriptions._deactivate(id)).status, 'inactive')
  })
  await step('order_subscriptions', 'retrieve', async () => {
    assert.equal((await cl.order_subscriptions.retrieve(id)).reference, 'sdk-subscription')
  })
  await step('order_subscriptions', 'include', async () => {
    const got = await cl.order_subscriptions.retrieve(id, { include: ['source_order', 'customer_payment_source', 'customer'] })
    assert.equal(got.source_order.id, shop.order.id)
    assert.equal(got.customer_payment_source.id, shop.visa.id)
    assert.equal(got.customer.id, shop.ada.id)
  })
  const monthly = await step('order_subscriptions', 'create', async () => {
    const created = await cl.order_subscriptions.create({
      frequency: 'monthly', renewal_alert_period: 24, source_order: cl.orders.relationship(shop.order.id)
    })
    // Commerce Layer's default: the placed source order activates it
    assert.equal(created.status, 'active')
    assert.equal(created.activate_by_source_order, true)
    assert.equal(created.renewal_alert_period, 24)
    return created
  })
  await step('order_subscriptions', '_cancel', async () => {
    assert.equal((await cl.order_subscriptions._cancel(monthly.id)).status, 'cancelled')
  })
  await step('order_subscriptions', 'list', async () => {
    assert.equal((await cl.order_subscriptions.list()).recordCount, 2)
  })
  await step('order_subscriptions', 'filter', async () => {
    const cancelled = await cl.order_subscriptions.list({ filters: { status_eq: 'cancelled', source_order_id_eq: shop.order.id } })
    assert.deepEqual(ids(cancelled), [monthly.id])
  })
  await step('order_subscriptions', 'sort', async () => {
    assert.deepEqual(ids(await cl.order_subscriptions.list({ sort: { frequency: 'desc' } })), [id, monthly.id])
  })
  await step('order_subscriptions', 'page', async () => {
    const page = await cl.order_subscriptions.list({ sort: { created_at: 'asc' }, pageSize: 1, pageNumber: 2 })
    assert.deepEqual(ids(page), [monthly.id])
  })
  await step('order_subscriptions', 'related', async () => {
    assert.equal((await cl.order_subscriptions.source_order(id)).id, shop.order.id)
    assert.equal((await cl.order_subscriptions.customer_payment_source(id)).id, shop.visa.id)
    assert.equal((await cl.order_subscriptions.customer(id)).id, shop.ada.id)
  })
  await step('order_subscriptions', 'delete', async () => {
    await cl.order_subscriptions.delete(monthly.id)
    await gone(() => cl.order_subscriptions.retrieve(monthly.id))
  })
})

await section('order_subscription_items', async () => {
  const items = cl.order_subscription_items
  // The source order's lines carry no frequency: a subscription without items (manual
  // mode) until the SDK adds some (automatic mode).
  const subscription = await step('order_subscriptions', 'create', () => cl.order_subscriptions.create({
    frequency: 'weekly', source_order: cl.orders.relationship(shop.order)
  }))
  const of = cl.order_subscriptions.relationship(subscription)
  const tee = await step('order_subscription_items', 'create', async () => {
    const created = await items.create({ sku_code: shop.tee.code, quantity: 3, order_subscription: of })
    assert.equal(created.unit_amount_cents, 1500) // the source order's line's
    assert.equal(created.total_amount_cents, 4500)
    return created
  })
  const mug = await step('order_subscription_items', 'create', () => items.create({
    sku_code: shop.mug.code, quantity: 1, unit_amount_cents: 800, metadata: { gift: true }, order_subscription: of
  }))
  await step('order_subscription_items', 'retrieve', async () => {
    const got = await items.retrieve(mug.id)
    assert.equal(got.unit_amount_cents, 800)
    assert.deepEqual(got.metadata, { gift: true })
  })
  await step('order_subscription_items', 'update', async () => {
    const updated = await items.update({ id: tee.id, quantity: 2 })
    assert.equal(updated.total_amount_cents, 3000)
  })
  await step('order_subscription_items', 'list', async () => {
    assert.equal((await items.list()).recordCount, 2)
  })
  await step('order_subscription_items', 'filter', async () => {
    const listed = await items.list({ filters: { order_subscription_id_eq: subscription.id, sku_code_eq: shop.mug.code } })
    assert.deepEqual(ids(listed), [mug.id])
  })
  await step('order_subscription_items', 'sort', async () => {
    assert.deepEqual(ids(await items.list({ sort: { unit_amount_cents: 'desc' } })), [tee.id, mug.id])
  })
  await step('order_subscription_items', 'include', async () => {
    const got = await cl.order_subscriptions.retrieve(subscription.id, { include: ['order_subscription_items'] })
    assert.deepEqual(ids(got.order_subscription_items).sort(), [tee.id, mug.id].sort())
  })
  await step('order_subscription_items', 'related', async () => {
    assert.equal((await items.order_subscription(tee.id)).id, subscription.id)
    assert.equal((await items.source_line_item(tee.id)).id, shop.teeLine.id)
    assert.equal((await items.source_line_item(mug.id)).id, shop.mugLine.id) // at a price of its own
    assert.equal((await cl.order_subscriptions.order_subscription_items(subscription.id)).recordCount, 2)
  })
  await refused('order_subscription_items', 422, '/data/attributes/quantity', () => items.create({
    sku_code: shop.tee.code, quantity: 0, order_subscription: of
  }))
  await refused('order_subscription_items', 422, '/data/attributes/sku_code', () => items.create({
    sku_code: 'NOT-IN-THE-CATALOG', order_subscription: of
  }))
  await step('order_subscription_items', 'delete', async () => {
    await items.delete(mug.id)
    await gone(() => items.retrieve(mug.id))
  })
  // its last item stays: without one it would renew the whole source order
  await refused('order_subscription_items', 409, null, () => items.delete(tee.id))
  // an item names a SKU, a bundle or an adjustment: one of them
  const kit = await step('order_subscription_items', 'create', async () => {
    const created = await items.create({ bundle_code: shop.kit.code, quantity: 2, order_subscription: of })
    assert.equal(created.item_type, 'bundles')
    assert.equal(created.unit_amount_cents, 1800) // the bundle's price
    return created
  })
  const loyalty = await step('order_subscription_items', 'create', async () => {
    const created = await items.create({ adjustment: cl.adjustments.relationship(shop.loyalty), order_subscription: of })
    assert.equal(created.item_type, 'adjustments')
    assert.equal(created.total_amount_cents, -250) // the adjustment's amount
    return created
  })
  await step('order_subscription_items', 'include', async () => {
    const got = await items.retrieve(kit.id, { include: ['bundle', 'sku'] })
    assert.equal(got.bundle.code, 'SDK-KIT')
    assert.ok(!got.sku)
    assert.equal((await items.retrieve(loyalty.id, { include: ['adjustment'] })).adjustment.name, 'SDK loyalty')
  })
  await refused('order_subscription_items', 422, '/data/attributes/bundle_code', () => items.create({
    sku_code: shop.tee.code, bundle_code: shop.kit.code, order_subscription: of
  }))
})

await section('recurring_order_copies', async () => {
  const renewals = live.recurring_order_copies
  await step('recurring_order_copies', 'list', async () => {
    assert.deepEqual(ids(await renewals.list()), [seed.renewal])
  })
  await step('recurring_order_copies', 'retrieve', async () => {
    const renewal = await renewals.retrieve(seed.renewal)
    assert.equal(renewal.type, 'recurring_order_copies')
    assert.equal(renewal.status, 'completed')
  })
  await step('recurring_order_copies', 'filter', async () => {
    assert.deepEqual(ids(await renewals.list({ filters: { status_eq: 'completed' } })), [seed.renewal])
    assert.deepEqual(ids(await renewals.list({ filters: { status_eq: 'failed' } })), [])
  })
  await step('recurring_order_copies', 'sort', async () => {
    assert.deepEqual(ids(await renewals.list({ sort: { completed_at: 'desc' } })), [seed.renewal])
  })
  await step('recurring_order_copies', 'include', async () => {
    const renewal = await renewals.retrieve(seed.renewal, { include: ['order_subscription', 'target_order'] })
    assert.equal(renewal.order_subscription.id, seed.renewed_subscription)
    assert.equal(renewal.target_order.status, 'placed')
  })
  await step('recurring_order_copies', 'related', async () => {
    const listed = await live.order_subscriptions.recurring_order_copies(seed.renewed_subscription)
    assert.deepEqual(ids(listed), [seed.renewal])
    assert.equal((await renewals.source_order(seed.renewal)).type, 'orders')
    // order_copies serves both kinds; copy_type tells them apart.
    const both = await live.order_copies.list({ sort: { copy_type: 'asc' } })
    assert.deepEqual(Array.from(both, (c) => c.copy_type), ['order_copies', 'recurring_order_copies'])
  })
  // A copy asked for is no renewal; renewals are read only here.
  await refused('recurring_order_copies', 404, null, () => renewals.retrieve(seed.live_copy))
  await refused('recurring_order_copies', 405, null, () => renewals.update({ id: seed.renewal, reference: 'x' }))
})

// In live mode: a promotion active now would change what the test-mode orders cost.
await section('promotions', async () => {
  const now = new Date().toISOString()
  const later = new Date(Date.now() + 30 * 86400 * 1000).toISOString()
  const percent = await step('percentage_discount_promotions', 'create', async () => {
    const created = await live.percentage_discount_promotions.create({
      name: 'SDK ten percent', percentage: 10, starts_at: now, expires_at: later, sku_codes: ['SDK-TEE']
    })
    assert.equal(created.type, 'percentage_discount_promotions')
    return created
  })
  const fixed = await step('fixed_amount_promotions', 'create', () => live.fixed_amount_promotions.create({
    name: 'SDK five off', fixed_amount_cents: 500, currency_code: 'USD', starts_at: now, expires_at: later
  }))
  await step('percentage_discount_promotions', 'update', async () => {
    const updated = await live.percentage_discount_promotions.update({ id: percent.id, percentage: 15 })
    assert.equal(updated.percentage, 15)
  })
  await step('fixed_amount_promotions', 'retrieve', async () => {
    assert.equal((await live.fixed_amount_promotions.retrieve(fixed.id)).fixed_amount_cents, 500)
  })
  const coupon = await step('coupons', 'create', () => live.coupons.create({
    code: 'Sdk-Spring', usage_limit: 2, promotion: live.promotions.relationship(fixed.id)
  }))
  await step('coupons', 'update', async () => {
    assert.equal((await live.coupons.update({ id: coupon.id, usage_limit: 3 })).usage_limit, 3)
  })
  await step('coupons', 'filter', async () => {
    assert.deepEqual(ids(await live.coupons.list({ filters: { code_eq: 'Sdk-Spring' } })), [coupon.id])
  })
  await step('coupons', 'include', async () => {
    const got = await live.coupons.retrieve(coupon.id, { include: ['promotion'] })
    assert.equal(got.promotion.id, fixed.id)
  })
  // A code is unique in its mode, whatever the case.
  await refused('coupons', 422, '/data/attributes/code', () => live.coupons.create({
    code: 'SDK-SPRING', promotion: live.promotions.relationship(fixed.id)
  }))
  await step('promotions', 'list', async () => {
    const all = await live.promotions.list({ sort: { name: 'asc' } })
    assert.deepEqual(ids(all), [fixed.id, percent.id])
  })
  await step('promotions', 'filter', async () => {
    assert.deepEqual(ids(await live.promotions.list({ filters: { name_cont: 'percent' } })), [percent.id])
  })
  await step('coupons', 'delete', async () => {
    await live.coupons.delete(coupon.id)
    await gone(() => live.coupons.retrieve(coupon.id))
  })
  await step('percentage_discount_promotions', 'delete', async () => {
    await live.percentage_discount_promotions.delete(percent.id)
    await gone(() => live.percentage_discount_promotions.retrieve(percent.id))
  })
})

await section('webhooks', async () => {
  const hook = (attributes) => step('webhooks', 'create', () => cl.webhooks.create({
    callback_url: 'https://93.184.215.14/sdk', ...attributes
  }))
  const completed = await hook({ name: 'sdk', topic: 'order_copies.complete', include_resources: ['source_order'] })
  const failed = await hook({ name: 'sdk failures', topic: 'order_copies.fail' })
  assert.ok(completed.shared_secret.length > 0)

  await step('webhooks', 'update', async () => {
    const updated = await cl.webhooks.update({ id: completed.id, name: 'sdk copies', include_resources: ['source_order', 'target_order'] })
    assert.deepEqual(updated.include_resources, ['source_order', 'target_order'])
  })
  await step('webhooks', '_disable', async () => {
    assert.notEqual((await cl.webhooks._disable(completed.id)).disabled_at, null)
  })
  await step('webhooks', '_enable', async () => {
    assert.equal((await cl.webhooks._enable(completed.id)).disabled_at, null)
  })
  await step('webhooks', '_reset_circuit', async () => {
    assert.equal((await cl.webhooks._reset_circuit(completed.id)).circuit_state, 'closed')
  })
  await step('webhooks', 'retrieve', async () => {
    assert.equal((await cl.webhooks.retrieve(completed.id)).name, 'sdk copies')
  })
  await step('webhooks', 'list', async () => {
    assert.equal((await cl.webhooks.list()).recordCount, 3)
  })
  await step('webhooks', 'filter', async () => {
    assert.deepEqual(ids(await cl.webhooks.list({ filters: { topic_eq: 'order_copies.fail' } })), [failed.id])
    assert.deepEqual(ids(await cl.webhooks.list({ filters: { name_start: 'sdk' } })).sort(), [completed.id, failed.id].sort())
  })
  await step('webhooks', 'sort', async () => {
    const oldest = await cl.webhooks.list({ sort: { created_at: 'asc' } })
    assert.deepEqual(ids(oldest), [seed.webhook, completed.id, failed.id])
  })
  await step('webhooks', 'page', async () => {
    const page = await cl.webhooks.list({ sort: { created_at: 'asc' }, pageSize: 2, pageNumber: 2 })
    assert.deepEqual(ids(page), [failed.id])
  })
  await step('webhooks', 'include', async () => {
    const seeded = await cl.webhooks.retrieve(seed.webhook, { include: ['last_event_callbacks'] })
    assert.deepEqual(ids(seeded.last_event_callbacks), [...seed.event_callbacks].reverse())
  })
  await step('webhooks', 'related', async () => {
    const callbacks = await cl.webhooks.last_event_callbacks(seed.webhook)
    assert.deepEqual(Array.from(callbacks, (c) => c.response_code), [200, 500])
  })
  await step('webhooks', 'delete', async () => {
    await cl.webhooks.delete(failed.id)
    await gone(() => cl.webhooks.retrieve(failed.id))
  })
})

await section('event_callbacks', async () => {
  const [first, second] = seed.event_callbacks
  await step('event_callbacks', 'list', async () => {
    assert.deepEqual(ids(await cl.event_callbacks.list()), [second, first]) // newest first
  })
  await step('event_callbacks', 'retrieve', async () => {
    const callback = await cl.event_callbacks.retrieve(first)
    assert.equal(callback.response_code, 500)
    assert.equal(callback.payload.data.id, seed.completed_copy)
  })
  await step('event_callbacks', 'filter', async () => {
    const ok = await cl.event_callbacks.list({ filters: { webhook_id_eq: seed.webhook, response_code_eq: 200 } })
    assert.deepEqual(ids(ok), [second])
  })
  await step('event_callbacks', 'sort', async () => {
    assert.deepEqual(ids(await cl.event_callbacks.list({ sort: { response_code: 'desc' } })), [first, second])
  })
  await step('event_callbacks', 'page', async () => {
    const page = await cl.event_callbacks.list({ pageSize: 1, pageNumber: 2 })
    assert.deepEqual(ids(page), [first])
    assert.equal(page.pageCount, 2)
  })
  await step('event_callbacks', 'include', async () => {
    const callback = await cl.event_callbacks.retrieve(second, { include: ['webhook'] })
    assert.equal(callback.webhook.name, 'seeded')
  })
  await step('event_callbacks', 'related', async () => {
    assert.equal((await cl.event_callbacks.webhook(first)).id, seed.webhook)
  })
})

await section('external_gateways', async () => {
  const endpoint = (path) => `https://93.184.215.14/psp/${path}`
  const gateway = (attributes) => step('external_gateways', 'create', () => cl.external_gateways.create({
    name: 'sdk psp',
    authorize_url: endpoint('authorize'),
    capture_url: endpoint('capture'),
    void_url: endpoint('void'),
    refund_url: endpoint('refund'),
    ...attributes
  }))
  const psp = await gateway({})
  const spare = await gateway({ name: 'sdk spare', token_url: endpoint('token') })
  assert.ok(psp.shared_secret.length > 0)
  assert.equal(psp.circuit_state, 'closed')
  assert.equal(psp.circuit_failure_count, 0)

  await step('external_gateways', 'update', async () => {
    const updated = await cl.external_gateways.update({ id: psp.id, name: 'sdk psp eu', refund_url: endpoint('refunds') })
    assert.equal(updated.refund_url, endpoint('refunds'))
    assert.equal(updated.shared_secret, psp.shared_secret)
  })
  await step('external_gateways', '_reset_circuit', async () => {
    assert.equal((await cl.external_gateways._reset_circuit(psp.id)).circuit_state, 'closed')
  })
  await step('external_gateways', 'retrieve', async () => {
    assert.equal((await cl.external_gateways.retrieve(psp.id)).name, 'sdk psp eu')
  })
  await step('external_gateways', 'list', async () => {
    assert.equal((await cl.external_gateways.list()).recordCount, 2)
  })
  await step('external_gateways', 'filter', async () => {
    assert.deepEqual(ids(await cl.external_gateways.list({ filters: { name_eq: 'sdk spare' } })), [spare.id])
  })
  await step('external_gateways', 'sort', async () => {
    assert.deepEqual(ids(await cl.external_gateways.list({ sort: { created_at: 'asc' } })), [psp.id, spare.id])
  })
  await refused('external_gateways', 422, '/data/attributes/authorize_url', () =>
    cl.external_gateways.create({ name: 'sdk bad', authorize_url: 'ftp://93.184.215.14/psp' }))
  await step('external_gateways', 'delete', async () => {
    await cl.external_gateways.delete(spare.id)
    await gone(() => cl.external_gateways.retrieve(spare.id))
  })
  // Another mode's key does not see it.
  await step('external_gateways', 'isolated', async () => {
    await gone(() => live.external_gateways.retrieve(psp.id))
  })
})

await section('payments', async () => {
  // An order placed with the wallet's card, captured, refunded in part then in whole; and one
  // voided: the order triggers as the SDK sends them, the transactions read back.
  const placed = async (quantity) => {
    const order = await step('orders', 'create', () => cl.orders.create({
      currency_code: 'USD',
      customer_email: shop.ada.email,
      customer: cl.customers.relationship(shop.ada),
      billing_address: cl.addresses.relationship(shop.billing),
      shipping_address: cl.addresses.relationship(shop.shipping.id)
    }))
    await step('line_items', 'create', () => cl.line_items.create({
      sku_code: shop.mug.code, quantity, order: cl.orders.relationship(order)
    }))
    await step('orders', '_customer_payment_source_id', () => cl.orders._customer_payment_source_id(order.id, shop.visa.id))
    return step('orders', '_place', () => cl.orders._place(order.id))
  }
  const paid = await placed(2)
  const total = paid.total_amount_cents
  await step('orders', '_capture', async () => {
    assert.equal((await cl.orders._capture(paid.id)).payment_status, 'paid')
  })
  await step('orders', '_refund_amount_cents', async () => {
    const refunded = await cl.orders.update({ id: paid.id, _refund_amount_cents: 500 })
    assert.equal(refunded.payment_status, 'partially_refunded')
  })
  await refused('orders', 422, '/data/attributes/_refund_amount_cents', () =>
    cl.orders.update({ id: paid.id, _refund_amount_cents: total }))
  await step('orders', '_refund', async () => {
    assert.equal((await cl.orders._refund(paid.id)).payment_status, 'refunded')
  })
  const byOrder = { filters: { order_id_eq: paid.id } }
  const [hold] = await step('authorizations', 'filter', async () => {
    const holds = await cl.authorizations.list(byOrder)
    assert.equal(holds.length, 1)
    assert.equal(holds[0].amount_cents, total)
    assert.equal(holds[0].status, 'captured')
    return holds
  })
  await step('authorizations', 'retrieve', async () => {
    const again = await cl.authorizations.retrieve(hold.id, { include: ['order'] })
    assert.equal(again.order.id, paid.id)
  })
  const [capture] = await step('captures', 'filter', async () => {
    const captures = await cl.captures.list(byOrder)
    assert.deepEqual(Array.from(captures, (c) => c.amount_cents), [total])
    return captures
  })
  await step('captures', 'related', async () => {
    assert.equal((await cl.captures.reference_authorization(capture.id)).id, hold.id)
  })
  await step('refunds', 'filter', async () => {
    const refunds = await cl.refunds.list({ ...byOrder, sort: { created_at: 'asc' } })
    assert.deepEqual(Array.from(refunds, (r) => r.amount_cents), [500, total - 500])
  })

  const held = await placed(1)
  await step('orders', '_void', async () => {
    assert.equal((await cl.orders.update({ id: held.id, _void: true })).payment_status, 'voided')
  })
  await step('voids', 'filter', async () => {
    const voids = await cl.voids.list({ filters: { order_id_eq: held.id } })
    assert.equal(voids.length, 1)
  })
  await refused('orders', 409, '/data/attributes/_capture', () => cl.orders._capture(held.id))
})

console.log(JSON.stringify({ operations, failures }))
process.exitCode = failures.length ? 1 : 0
