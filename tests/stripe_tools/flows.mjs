// The flows Stripe's CLI triggers cause, driven by stripe-node against the local Stripe.
// Usage: node flows.mjs http://127.0.0.1:PORT sk_test_...  → one JSON line: {check: true|error}
import Stripe from 'stripe';

const [base, key] = process.argv.slice(2);
const url = new URL(base);
const stripe = new Stripe(key, {
  host: url.hostname, port: Number(url.port), protocol: url.protocol.replace(':', ''),
  maxNetworkRetries: 0, telemetry: false,
});
const checks = {};

async function check(name, flow) {
  try {
    checks[name] = (await flow()) === true ? true : 'the flow returned false';
  } catch (error) {
    checks[name] = `${error.type || error.name}: ${error.message}`;
  }
}

const shipping = {name: 'Jenny Rosen', address: {line1: '510 Townsend St', postal_code: '94103',
                                               city: 'San Francisco', state: 'CA', country: 'US'}};

await check('customer (a coupon refused since basil), updated, deleted', async () => {
  const coupon = await stripe.coupons.create({percent_off: 20});
  let refused = null;
  try {  // 2025-03-31.basil removed a customer's coupon (discounts replace it elsewhere)
    await stripe.customers.create({description: 'node', coupon: coupon.id});
  } catch (error) {
    refused = error.code;
  }
  const customer = await stripe.customers.create({description: 'node'});
  const updated = await stripe.customers.update(customer.id, {metadata: {foo: 'bar'}});
  const gone = await stripe.customers.del(customer.id);
  return refused === 'parameter_unknown' && updated.metadata.foo === 'bar'
    && gone.deleted === true;
});

await check('manual capture in usd, with shipping and a customer', async () => {
  const customer = await stripe.customers.create({});
  const pi = await stripe.paymentIntents.create({
    amount: 2000, currency: 'usd', capture_method: 'manual', confirm: true,
    payment_method: 'pm_card_visa', customer: customer.id, shipping});
  const captured = await stripe.paymentIntents.capture(pi.id, {amount_to_capture: 1500});
  const charge = await stripe.charges.retrieve(captured.latest_charge);
  return pi.status === 'requires_capture' && pi.amount_capturable === 2000
    && captured.status === 'succeeded' && captured.amount_received === 1500
    && charge.captured === true && charge.amount_captured === 1500
    && pi.shipping.name === 'Jenny Rosen';
});

await check('refund updated', async () => {
  const pi = await stripe.paymentIntents.create({
    amount: 1000, currency: 'eur', confirm: true, payment_method: 'pm_card_visa'});
  const refund = await stripe.refunds.create({payment_intent: pi.id});
  const updated = await stripe.refunds.update(refund.id, {metadata: {order_id: '6735'}});
  return updated.metadata.order_id === '6735';
});

await check('test cards: declined, 3D Secure', async () => {
  let declined = null;
  try {
    await stripe.paymentIntents.create({amount: 2000, currency: 'jpy', confirm: true,
                                        payment_method: 'pm_card_visa_chargeDeclined'});
  } catch (error) {
    declined = error.decline_code;
  }
  const pi = await stripe.paymentIntents.create({amount: 2000, currency: 'jpy', confirm: true,
    payment_method: 'pm_card_authenticationRequired'});
  return declined === 'generic_decline' && pi.status === 'requires_action';
});

await check('payment method attached, updated, detached', async () => {
  const customer = await stripe.customers.create({});
  const pm = await stripe.paymentMethods.attach('pm_card_visa', {customer: customer.id});
  const updated = await stripe.paymentMethods.update(pm.id, {metadata: {foo: 'bar'}});
  const listed = await stripe.paymentMethods.list({customer: customer.id, type: 'card'});
  const detached = await stripe.paymentMethods.detach(pm.id);
  return pm.customer === customer.id && updated.metadata.foo === 'bar'
    && listed.data.length === 1 && detached.customer === null;
});

await check('setup intent succeeded, canceled', async () => {
  const customer = await stripe.customers.create({});
  const seti = await stripe.setupIntents.create({customer: customer.id, confirm: true,
                                                 payment_method: 'pm_card_visa'});
  const other = await stripe.setupIntents.create({});
  const canceled = await stripe.setupIntents.cancel(other.id);
  const pm = await stripe.paymentMethods.retrieve(seti.payment_method);
  return seti.status === 'succeeded' && pm.customer === customer.id
    && canceled.status === 'canceled';
});

await check('catalog: product, price, plan, coupon updated and deleted', async () => {
  const product = await stripe.products.create({name: 'myproduct'});
  const price = await stripe.prices.create({product: product.id, unit_amount: 1500,
                                            currency: 'usd', recurring: {interval: 'month'}});
  const priceUpdated = await stripe.prices.update(price.id, {metadata: {foo: 'bar'}});
  const productUpdated = await stripe.products.update(product.id, {metadata: {foo: 'bar'}});
  const plan = await stripe.plans.create({currency: 'usd', interval: 'month', amount: 2000,
                                          product: {name: 'myproduct'}});
  const planGone = await stripe.plans.del(plan.id);
  const coupon = await stripe.coupons.create({percent_off: 20});
  const couponUpdated = await stripe.coupons.update(coupon.id, {metadata: {foo: 'bar'}});
  const couponGone = await stripe.coupons.del(coupon.id);
  const lone = await stripe.products.create({name: 'lone'});
  const productGone = await stripe.products.del(lone.id);
  return priceUpdated.metadata.foo === 'bar' && productUpdated.metadata.foo === 'bar'
    && planGone.deleted && couponUpdated.metadata.foo === 'bar' && couponGone.deleted
    && productGone.deleted;
});

await check('invoice from invoice items, finalized and paid', async () => {
  const customer = await stripe.customers.create({});
  const pm = await stripe.paymentMethods.attach('pm_card_visa', {customer: customer.id});
  await stripe.invoiceItems.create({amount: 2000, currency: 'usd', customer: customer.id});
  const invoice = await stripe.invoices.create({customer: customer.id,
                                                pending_invoice_items_behavior: 'include'});
  const finalized = await stripe.invoices.finalizeInvoice(invoice.id);
  const paid = await stripe.invoices.pay(invoice.id, {payment_method: pm.id});
  return invoice.status === 'draft' && invoice.amount_due === 2000
    && finalized.status === 'open' && paid.status === 'paid';
});

await check('test clock created, advanced, deleted', async () => {
  const clock = await stripe.testHelpers.testClocks.create({frozen_time: 1577836800});
  const advancing = await stripe.testHelpers.testClocks.advance(clock.id,
                                                                {frozen_time: 1580515200});
  const ready = await stripe.testHelpers.testClocks.retrieve(clock.id);
  const gone = await stripe.testHelpers.testClocks.del(clock.id);
  return advancing.status === 'advancing' && ready.status === 'ready'
    && ready.frozen_time === 1580515200 && gone.deleted;
});

await check('lists apply their filters, or refuse them', async () => {
  const customer = await stripe.customers.create({});
  await stripe.paymentIntents.create({amount: 2000, currency: 'jpy', customer: customer.id});
  const mine = await stripe.paymentIntents.list({customer: customer.id});
  let refused = null;
  try {
    await stripe.charges.list({transfer_group: 'group'});
  } catch (error) {
    refused = error.code;
  }
  const deleted = await stripe.events.list({type: 'customer.deleted'});
  // transfer_group is Stripe's filter, which this local Stripe does not apply: it says so
  return mine.data.length === 1 && refused === 'emulator_parameter_unsupported'
    && deleted.data.length >= 1;
});

console.log(JSON.stringify(checks));
