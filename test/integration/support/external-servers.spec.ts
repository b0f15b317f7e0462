// The brokers the integration tests start: each answers its own protocol on its own port, and is
// gone after stop().
import net from 'node:net';
import { describeWithServer, startNats, startRedis } from '../../support/external-servers.js';

async function exchange(port: number, send: string, until: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (chunk) => {
      text += chunk.toString();
      if (until.test(text)) {
        socket.destroy();
        resolve(text);
      }
    });
    socket.on('error', reject);
    if (send) socket.write(send);
  });
}

const refused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(false)));
    socket.once('error', () => resolve(true));
  });

describeWithServer('redis', 'a Redis server for tests', () => {
  it('answers PING, then stops', async () => {
    const redis = await startRedis();
    expect(await exchange(redis.port, 'PING\r\n', /\r\n/)).toBe('+PONG\r\n');
    await redis.stop();
    expect(await refused(redis.port)).toBe(true);
  });
});

describeWithServer('nats', 'a NATS server for tests', () => {
  it('greets with INFO, then stops', async () => {
    const nats = await startNats();
    expect(await exchange(nats.port, '', /\r\n/)).toMatch(/^INFO \{/);
    await nats.stop();
    expect(await refused(nats.port)).toBe(true);
  });
});
