import { validateMpBody, type FakeGa, type ValidationMessage } from './fake-ga.ts';

/**
 * Every request GA accepted, checked again both ways: by `validateMpBody` at `nowMs` and by the fake's
 * `/debug/mp/collect` endpoint (which checks against the real time). Resolves with all complaints.
 * @example expect(await validationMessages(ga)).toEqual([]);
 */
export async function validationMessages(ga: FakeGa, nowMs: number = Date.now()): Promise<ValidationMessage[]> {
  const messages: ValidationMessage[] = [];
  for (const request of ga.accepted()) {
    if (!request.body) {
      messages.push({ fieldPath: '', validationCode: 'VALUE_INVALID', description: 'not JSON' });
      continue;
    }
    messages.push(...validateMpBody(request.body, Buffer.byteLength(request.rawBody), nowMs));
    const res = await fetch(`${ga.url}/debug/mp/collect?measurement_id=${request.measurementId ?? ''}&api_secret=x`, {
      method: 'POST',
      body: request.rawBody,
    });
    messages.push(...((await res.json()) as { validationMessages: ValidationMessage[] }).validationMessages);
  }
  return messages;
}
